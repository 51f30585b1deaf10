import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { jobTempDir, sharedFile } from './helpers/job-dir.js';
import { alive, brokerTest, startStack } from './helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
type Submitted = JobRecord & { replicaJobs?: string[] };

const tempDir = (t: TestContext): string => jobTempDir(t, 'drover-model-');

const lines = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

brokerTest('replicas: N copies, each told its index and the count', async (t, broker) => {
  const s = await startStack(t, { broker });
  const res = await s.request<Submitted>('POST', '/v1/jobs', { command: 'echo "$DROVER_REPLICA_INDEX/$DROVER_REPLICAS"', replicas: 3 });
  assert.equal(res.status, 201);
  assert.equal(res.body.replicas, 3);
  assert.equal(res.body.replicaJobs?.length, 3);
  assert.equal(res.body.replicaJobs?.[0], res.body.id);
  const outputs: string[] = [];
  for (const id of res.body.replicaJobs ?? []) {
    const job = await s.waitFor(id);
    assert.equal(job.status, 'succeeded');
    assert.equal(job.replicaOf, res.body.id);
    outputs.push((await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs`)).body.items[0]!.line);
  }
  assert.deepEqual(outputs.sort(), ['0/3', '1/3', '2/3']);
});

test('a daemon is started again after every exit until it is stopped; stopping sends SIGTERM and it stays stopped', async (t) => {
  const s = await startStack(t);
  const dir = tempDir(t);
  // Every start is an attempt with a uid of its own: the file is open to all of them.
  const starts = sharedFile(dir, 'starts');
  const daemon = await s.submit({ command: `echo $$ >> ${starts}; sleep 0.1; exit 3`, type: 'daemon', intervalMs: 100 });
  assert.equal(daemon.type, 'daemon');
  assert.equal(daemon.intervalMs, 100);
  const deadline = Date.now() + 15_000;
  while (lines(starts).length < 3) {
    assert.ok(Date.now() < deadline, 'the daemon was not restarted');
    await sleep(50);
  }
  const job = await s.waitFor(daemon.id, (j) => j.status === 'running');
  assert.ok(job.attempts >= 3, 'each start is an attempt');
  const stopped = await s.request<JobRecord>('POST', `/v1/jobs/${daemon.id}/cancel`);
  assert.equal(stopped.body.status, 'cancelled');
  const count = lines(starts).length;
  await sleep(500);
  assert.equal(lines(starts).length, count, 'not started again after the stop');
  // A daemon that traps SIGTERM to note it: the stop reaches the process as SIGTERM.
  const termed = join(dir, 'termed');
  const long = await s.submit({ command: `trap 'echo term > ${termed}; exit 0' TERM; echo $$ > ${join(dir, 'pid')}; while :; do sleep 0.05; done`, type: 'daemon' });
  await s.waitFor(long.id, (j) => j.status === 'running' && j.pid !== null);
  await sleep(100);
  const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
  assert.equal((await s.request<JobRecord>('POST', `/v1/jobs/${long.id}/cancel`)).body.status, 'cancelled');
  assert.deepEqual(lines(termed), ['term']);
  assert.equal(alive(pid), false);
});

brokerTest('dependsOn job ids: waits for success; a failed dependency cancels the dependent with a reason', async (t, broker) => {
  const s = await startStack(t, { broker });
  const first = await s.submit({ command: 'sleep 1' });
  const second = await s.submit({ command: 'true', dependsOn: [first.id] });
  assert.equal(second.status, 'waiting');
  const third = await s.submit({ command: 'true', dependsOn: [second.id, first.id] });
  const [a, b, c] = [await s.waitFor(first.id), await s.waitFor(second.id), await s.waitFor(third.id)];
  assert.deepEqual([a.status, b.status, c.status], ['succeeded', 'succeeded', 'succeeded']);
  assert.ok(Date.parse(b.startedAt!) >= Date.parse(a.finishedAt!), 'second started after first finished');
  assert.ok(Date.parse(c.startedAt!) >= Date.parse(b.finishedAt!), 'third started after second finished');

  const failing = await s.submit({ command: 'sleep 0.2; exit 1' });
  const blocked = await s.submit({ command: 'true', dependsOn: [failing.id] });
  const chained = await s.submit({ command: 'true', dependsOn: [blocked.id] });
  const x = await s.waitFor(blocked.id);
  assert.equal(x.status, 'cancelled');
  assert.equal(x.error, `dependency ${failing.id} ended failed`);
  assert.equal(x.attempts, 0);
  assert.equal((await s.waitFor(chained.id)).error, `dependency ${blocked.id} ended cancelled`);
  // Depending on a job that already failed: cancelled at once.
  const late = await s.request<JobRecord>('POST', '/v1/jobs', { command: 'true', dependsOn: [failing.id] });
  assert.equal(late.status, 201);
  assert.equal(late.body.status, 'cancelled');
});

test('dependsOn names: wait while a named job or schedule run is unfinished; a name that never ran does not block', async (t) => {
  const s = await startStack(t);
  const build = await s.submit({ command: 'sleep 1.5', name: 'build' });
  const deploy = await s.submit({ command: 'true', dependsOn: ['build'] });
  assert.equal(deploy.status, 'waiting');
  const free = await s.run({ command: 'true', dependsOn: ['never-ran'] });
  assert.equal(free.status, 'succeeded');
  const [b, d] = [await s.waitFor(build.id), await s.waitFor(deploy.id)];
  assert.ok(Date.parse(d.startedAt!) >= Date.parse(b.finishedAt!));
  // A name waits for the end, whatever the outcome.
  const flaky = await s.submit({ command: 'sleep 0.2; exit 2', name: 'flaky' });
  const after = await s.run({ command: 'true', dependsOn: ['flaky'] });
  assert.equal(after.status, 'succeeded');
  assert.ok(Date.parse(after.startedAt!) >= Date.parse((await s.waitFor(flaky.id)).finishedAt!));
});

test('task model: bad input is a 4xx and stores nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [Record<string, unknown>, number, RegExp][] = [
    [{ command: 'true', replicas: 0 }, 400, /replicas/],
    [{ command: 'true', replicas: 65 }, 400, /replicas/],
    [{ command: 'true', dependsOn: ['01J0000000000000000000000Z'] }, 400, /dependsOn: no job/],
    [{ command: 'true', dependsOn: ['a', 'a'] }, 400, /dependsOn/],
    [{ command: 'true', type: 'forever' }, 400, /type/],
    [{ command: 'true', intervalMs: 100 }, 400, /intervalMs: only applies to type "daemon"/],
    [{ command: 'true', user: 'root' }, 403, /user "root" is not allowed/],
  ];
  for (const [body, status, message] of cases) {
    const res = await s.request<{ error: { message: string } }>('POST', '/v1/jobs', body);
    assert.equal(res.status, status, JSON.stringify(body));
    assert.match(res.body.error.message, message);
  }
  const batch = await s.request('POST', '/v1/jobs/batch', { jobs: [{ command: 'true' }, { command: 'true', dependsOn: ['01J0000000000000000000000Z'] }] });
  assert.equal(batch.status, 400);
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
});

test("a daemon's output is kept per run: the last two runs, each up to the cap, however long it lives", async (t) => {
  const s = await startStack(t, { env: { RUNNER_OUTPUT_CAP: '200' } });
  const daemon = await s.submit({ command: 'echo "run $DROVER_ATTEMPT"; head -c 500 /dev/zero | tr "\\0" x; echo', type: 'daemon', intervalMs: 50 });
  const deadline = Date.now() + 15_000;
  while ((await s.waitFor(daemon.id, () => true)).attempts < 5) {
    assert.ok(Date.now() < deadline, 'the daemon did not restart');
    await sleep(50);
  }
  await s.request('POST', `/v1/jobs/${daemon.id}/cancel`);
  const lines = (await s.request<{ items: { line: string; attempt: number }[] }>('GET', `/v1/jobs/${daemon.id}/logs?limit=10000`)).body.items;
  const attempts = [...new Set(lines.map((l) => l.attempt))];
  assert.ok(attempts.length <= 2, `output of attempts ${attempts.join(',')} kept`);
  assert.ok(Math.min(...attempts) >= 4, 'the early runs were dropped');
  assert.ok(lines.some((l) => l.line === `run ${Math.max(...attempts)}`), 'late runs are still recorded despite the cap');
});
