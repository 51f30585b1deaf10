import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { JobStore, createRedis, createTransport } from '@drover/core';
import { jobTempDir, sharedFile } from './helpers/job-dir.js';
import { REDIS_URL, startStack, brokerTest } from './helpers/stack.js';

brokerTest('duplicate deliveries of one job run it exactly once', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_CONCURRENCY: '4' } });
  const dir = jobTempDir(t, 'drover-dup-');
  // Open to every uid: a second run, under a uid of its own, must be able to leave its line too.
  const marker = sharedFile(dir, 'runs');
  const job = await s.submit({ command: `echo $DROVER_ATTEMPT >> ${marker}; sleep 0.2` });
  const transport = createTransport(s.config);
  t.after(() => transport.close());
  await transport.ready();
  await transport.publish(Array.from({ length: 6 }, () => ({ jobId: job.id, queue: 'default' })));
  const done = await s.waitFor(job.id);
  assert.equal(done.status, 'succeeded');
  // Let the duplicates reach the runner and be dropped, then check nothing ran twice.
  const probe = await s.run({ command: 'true' });
  assert.equal(probe.status, 'succeeded');
  assert.deepEqual(readFileSync(marker, 'utf8').trim().split('\n'), ['1']);
  assert.equal((await s.waitFor(job.id)).attempts, 1);
});

test('concurrent claims of one job: exactly one wins', async (t) => {
  const s = await startStack(t, { runner: false });
  const job = await s.submit({ command: 'true' });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const store = new JobStore(redis, s.prefix);
  const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => store.claim(job.id, `r${i}`, 10_000)));
  assert.equal(claims.filter((c) => 'attempt' in c).length, 1);
  assert.ok(claims.filter((c) => 'status' in c).every((c) => 'status' in c && c.status === 'running'));
});

brokerTest('a job whose runner stops heartbeating is lost, then retried elsewhere per its policy', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const store = new JobStore(redis, s.prefix);
  const retried = await s.submit({ command: 'echo second life', retries: 1 });
  const discarded = await s.submit({ command: 'true', retries: 3, onLost: 'discard' });
  // A runner claims both and dies at once: nobody renews the 200 ms leases.
  for (const j of [retried, discarded]) assert.ok('attempt' in (await store.claim(j.id, 'ghost', 200)));

  const { Runner } = await import('@drover/runner');
  const { createLogger } = await import('@drover/core');
  const runner = new Runner({ config: s.config, logger: createLogger('silent', 'test') });
  t.after(() => runner.close());
  await runner.start();

  const a = await s.waitFor(retried.id);
  assert.equal(a.status, 'succeeded');
  assert.equal(a.attempts, 2);
  assert.equal(a.runnerId, runner.id);
  const h = (await s.request<{ attemptHistory: { runnerId: string; status: string }[] }>('GET', `/v1/jobs/${retried.id}`)).body.attemptHistory;
  assert.deepEqual(h.map((x) => [x.runnerId, x.status]), [['ghost', 'lost'], [runner.id, 'succeeded']]);

  const b = await s.waitFor(discarded.id);
  assert.equal(b.status, 'lost');
  assert.equal(b.attempts, 1);
  assert.match(b.error ?? '', /lease expired/);
});
