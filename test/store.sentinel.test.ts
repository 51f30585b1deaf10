import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import type { JobRecord } from '@drover/core';
import { killTracked } from './helpers/process-groups.js';
import { startLocalSentinelSet, untilSentinelsName } from './helpers/redis-sentinel.js';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function logLines(s: Stack, id: string): Promise<string[]> {
  const logs = await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs`);
  assert.equal(logs.status, 200, JSON.stringify(logs.body));
  return logs.body.items.map((l) => l.line);
}

/** Runs a job to its end and checks it succeeded with `echo`'s one line as its log. */
async function runEcho(s: Stack, line: string): Promise<JobRecord> {
  const done = await s.run({ command: `echo ${line}` });
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
  assert.deepEqual(await logLines(s, done.id), [line]);
  return done;
}

/**
 * Submits until the API takes the job (30 s at most). Right after a failover the API's connection may still be in
 * its reconnect backoff, and the API answers 503 rather than queueing (its documented contract): a client retries.
 */
async function submitAfterFailover(s: Stack, spec: Record<string, unknown>): Promise<{ job: JobRecord; refused: number }> {
  const deadline = Date.now() + 30_000;
  for (let refused = 0; ; refused++) {
    const res = await s.request<JobRecord>('POST', '/v1/jobs', spec);
    if (res.status === 201) return { job: res.body, refused };
    assert.equal(res.status, 503, `submit after the failover: ${res.status} ${JSON.stringify(res.body)}`);
    assert.ok(Date.now() < deadline, `the API still refused submits 30 s after the failover: ${JSON.stringify(res.body)}`);
    await sleep(100);
  }
}

/** WAIT on the primary itself: once it returns 1, the replica holds every write acknowledged before it. */
async function waitForReplica(t: TestContext, primaryPort: number): Promise<number> {
  const direct = new Redis(primaryPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  direct.on('error', () => undefined);
  t.after(() => direct.disconnect());
  await direct.connect();
  const acked = (await direct.call('WAIT', '1', '2000')) as number;
  direct.disconnect();
  return acked;
}

brokerTest('Redis Sentinel: a job runs end to end through redis+sentinel:// and its logs read back', async (t, broker) => {
  const set = await startLocalSentinelSet(t, 1);
  const url = `redis+sentinel://127.0.0.1:${set.sentinelPorts[0]}/drover`;
  // In a subtest: the stack closes (its after-hooks) before the sentinel set stops.
  await t.test('stack', async (tt) => {
    const s = await startStack(tt, { broker, redisUrl: url });
    await runEcho(s, 'through a sentinel');
  });
});

brokerTest('Redis Sentinel failover: after kill -9 of the primary the same stack follows the sentinels to the promoted replica, and what was acknowledged before is kept', async (t, broker) => {
  const set = await startLocalSentinelSet(t, 3);
  await t.test('stack', async (tt) => {
    const s = await startStack(tt, { broker, redisUrl: set.url });
    const before = await runEcho(s, 'before the failover');
    assert.ok((await waitForReplica(tt, set.primaryPort)) >= 1, 'WAIT 1: the replica did not acknowledge');
    killTracked(set.primary);
    await untilSentinelsName(set, set.replicaPort);
    const { job, refused } = await submitAfterFailover(s, { command: 'echo after the failover' });
    tt.diagnostic(`submits refused (503) after the sentinels named the new primary: ${refused}`);
    const after = await s.waitFor(job.id, undefined, 30_000);
    assert.equal(after.status, 'succeeded', JSON.stringify(after));
    assert.deepEqual(await logLines(s, after.id), ['after the failover']);
    const kept = await s.request<JobRecord>('GET', `/v1/jobs/${before.id}`);
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.equal(kept.body.status, 'succeeded', JSON.stringify(kept.body));
    assert.deepEqual(await logLines(s, before.id), ['before the failover']);
  });
});
