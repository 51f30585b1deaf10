import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { jobTempDir, sharedFile } from './helpers/job-dir.js';
import { startServiceReady } from './helpers/processes.js';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const tempDir = (t: TestContext): string => jobTempDir(t, 'drover-queues-');

/** Most jobs that were between their `+` and `-` lines at once. */
function maxOverlap(file: string): number {
  let now = 0;
  let max = 0;
  for (const mark of readFileSync(file, 'utf8').split('\n')) {
    if (mark === '+') max = Math.max(max, ++now);
    if (mark === '-') now--;
  }
  return max;
}

interface QueueView {
  name: string;
  settings: { concurrency: number | null; rateLimit: { max: number; perMs: number } | null; dedupe: boolean; paused: boolean; defaultTimeoutMs: number | null };
  counts: { waiting: number; delayed: number; queued: number; parked: number; running: number; lastHour: Record<string, number> };
  running: { id: string }[];
}

async function waitAll(s: Stack, ids: string[]): Promise<JobRecord[]> {
  return Promise.all(ids.map((id) => s.waitFor(id, undefined, 60_000)));
}

brokerTest('global concurrency 2 holds across three runner processes', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const dir = tempDir(t);
  const file = sharedFile(dir, 'marks');
  const put = await s.request<QueueView>('PUT', '/v1/queues/limited', { concurrency: 2 });
  assert.equal(put.status, 200);
  assert.equal(put.body.settings.concurrency, 2);
  await Promise.all(
    ['a', 'b', 'c'].map((n) => startServiceReady(t, 'runner', s.prefix, { DROVER_BROKER: broker, RUNNER_ID: `${s.prefix.slice(5, 13)}-${n}`, RUNNER_QUEUES: 'limited', RUNNER_CONCURRENCY: '4' })),
  );
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await s.submit({ command: `echo + >> ${file}; sleep 0.2; echo - >> ${file}`, queue: 'limited' })).id);
  // While they run, the queue's own figures never show more than 2 running.
  for (let view = (await s.request<QueueView>('GET', '/v1/queues/limited')).body; (view.counts.lastHour.succeeded ?? 0) < 10; ) {
    assert.ok(view.counts.running <= 2, `the queue reports ${view.counts.running} running`);
    await sleep(25);
    view = (await s.request<QueueView>('GET', '/v1/queues/limited')).body;
  }
  const jobs = await waitAll(s, ids);
  assert.deepEqual(jobs.map((j) => j.status), jobs.map(() => 'succeeded'));
  assert.equal(maxOverlap(file), 2, 'never more than 2 at once, and the limit was reached');
  assert.ok(new Set(jobs.map((j) => j.runnerId)).size >= 2, 'the jobs spread over several runners');
  const view = (await s.request<QueueView>('GET', '/v1/queues/limited')).body;
  assert.equal(view.counts.lastHour.succeeded, 10);
  assert.equal(view.counts.parked, 0);
});

brokerTest('pause holds one queue while others run; running jobs finish; resume starts the held ones', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: 'q1,q2' } });
  const running = await s.submit({ command: 'sleep 0.4', queue: 'q1' });
  await s.waitFor(running.id, (j) => j.status === 'running');
  const paused = await s.request<QueueView>('POST', '/v1/queues/q1/pause');
  assert.equal(paused.status, 200);
  assert.equal(paused.body.settings.paused, true);
  const held = await s.submit({ command: 'true', queue: 'q1' });
  const other = await s.run({ command: 'true', queue: 'q2' });
  assert.equal(other.status, 'succeeded', 'another queue is not affected');
  assert.equal((await s.waitFor(running.id)).status, 'succeeded', 'the running job finished');
  await sleep(300);
  assert.equal((await s.waitFor(held.id, () => true)).status, 'queued', 'nothing starts while paused');
  assert.equal((await s.request<QueueView>('GET', '/v1/queues/q1')).body.counts.queued, 1);
  const resumed = await s.request<QueueView>('POST', '/v1/queues/q1/resume');
  assert.equal(resumed.body.settings.paused, false);
  assert.equal((await s.waitFor(held.id)).status, 'succeeded');
});

brokerTest('dedupe: a command already queued or running is not queued again; once it ended it is', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: 'distinct,default' } });
  await s.request('PUT', '/v1/queues/distinct', { dedupe: true });
  const first = await s.request<JobRecord & { deduplicated?: boolean }>('POST', '/v1/jobs', { command: 'sleep 0.3', queue: 'distinct' });
  assert.equal(first.status, 201);
  const again = await s.request<JobRecord & { deduplicated?: boolean }>('POST', '/v1/jobs', { command: 'sleep 0.3', queue: 'distinct' });
  assert.equal(again.status, 200);
  assert.equal(again.body.deduplicated, true);
  assert.equal(again.body.id, first.body.id);
  const different = await s.request<JobRecord>('POST', '/v1/jobs', { command: 'sleep 0.2', queue: 'distinct' });
  assert.equal(different.status, 201);
  const elsewhere = await s.request<JobRecord>('POST', '/v1/jobs', { command: 'sleep 0.3', queue: 'default' });
  assert.equal(elsewhere.status, 201, 'only a queue with dedupe deduplicates');
  await s.waitFor(first.body.id);
  const after = await s.request<JobRecord>('POST', '/v1/jobs', { command: 'sleep 0.3', queue: 'distinct' });
  assert.equal(after.status, 201);
  assert.notEqual(after.body.id, first.body.id);
  // An explicit key works on any queue.
  const k1 = await s.request<JobRecord>('POST', '/v1/jobs', { command: 'sleep 0.3', dedupeKey: 'nightly' });
  const k2 = await s.request<JobRecord & { deduplicated?: boolean }>('POST', '/v1/jobs', { command: 'echo other', dedupeKey: 'nightly' });
  assert.equal(k2.status, 200);
  assert.equal(k2.body.id, k1.body.id);
  await Promise.all([after.body.id, different.body.id, elsewhere.body.id, k1.body.id].map((id) => s.waitFor(id)));
});

test('rate limit: at most 2 starts in any 600 ms window', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'rated' } });
  await s.request('PUT', '/v1/queues/rated', { rateLimit: { max: 2, perMs: 600 } });
  const jobs = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 6 }, () => ({ command: 'true', queue: 'rated' })) });
  const done = await waitAll(s, jobs.body.jobs.map((j) => j.id));
  assert.deepEqual(done.map((j) => j.status), done.map(() => 'succeeded'));
  // The window counts claims (a runner taking the job); the spawn follows by a few ms.
  const claims = done.map((j) => Date.parse(j.claimedAt!)).sort((a, b) => a - b);
  for (let i = 2; i < claims.length; i++) assert.ok(claims[i]! - claims[i - 2]! >= 600, `claims ${claims.map((x) => x - claims[0]!).join(',')}`);
});

test('a queue default timeout applies to jobs that set none', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'short' } });
  await s.request('PUT', '/v1/queues/short', { defaultTimeoutMs: 300 });
  const job = await s.run({ command: 'sleep 5', queue: 'short' });
  assert.equal(job.status, 'timed_out');
  assert.match(job.error ?? '', /timed out after 300 ms/);
  const own = await s.run({ command: 'sleep 0.5', queue: 'short', timeoutMs: 5000 });
  assert.equal(own.status, 'succeeded', "a job's own timeout wins");
});

test('cancel everything queued in a queue: queued, parked, delayed and waiting jobs; running ones are left', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'bulk' } });
  const running = await s.submit({ command: 'sleep 2', queue: 'bulk' });
  await s.waitFor(running.id, (j) => j.status === 'running');
  await s.request('POST', '/v1/queues/bulk/pause');
  const queued = await Promise.all([1, 2, 3].map(() => s.submit({ command: 'true', queue: 'bulk' })));
  const delayed = await s.submit({ command: 'true', queue: 'bulk', delayMs: 60_000 });
  const waiting = await s.submit({ command: 'true', queue: 'bulk', dependsOn: [running.id] });
  assert.equal(waiting.status, 'waiting');
  const res = await s.request<{ cancelled: number }>('DELETE', '/v1/queues/bulk/jobs?status=waiting');
  assert.equal(res.status, 200);
  assert.equal(res.body.cancelled, 5);
  for (const j of [...queued, delayed, waiting]) assert.equal((await s.waitFor(j.id)).status, 'cancelled');
  assert.equal((await s.waitFor(running.id)).status, 'succeeded');
  await s.request('POST', '/v1/queues/bulk/resume');
  const view = (await s.request<QueueView>('GET', '/v1/queues/bulk')).body;
  assert.equal(view.counts.queued + view.counts.parked + view.counts.delayed + view.counts.waiting, 0);
  assert.equal(view.counts.lastHour.cancelled, 5);
});

test('queue settings: bad input is a 400 and changes nothing; unknown queues are 404', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  for (const body of [{ concurrency: 0 }, { concurrency: 1.5 }, { bogus: 1 }, { rateLimit: { max: 1 } }, { paused: 'yes' }, { defaultTimeoutMs: -1 }]) {
    const res = await s.request<{ error: { code: string } }>('PUT', '/v1/queues/fresh', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.body.error.code, 'VALIDATION');
  }
  assert.equal((await s.request('GET', '/v1/queues/fresh')).status, 404);
  assert.equal((await s.request('POST', '/v1/queues/fresh/resume')).status, 404, 'nothing to resume');
  assert.equal((await s.request('PUT', '/v1/queues/bad%20name', { concurrency: 1 })).status, 400);
  assert.equal((await s.request('POST', '/v1/queues/bad%20name/pause')).status, 400);
  const list = await s.request<{ items: QueueView[] }>('GET', '/v1/queues');
  assert.deepEqual(list.body.items.map((q) => q.name), []);
  const read = await s.request('PUT', '/v1/queues/fresh', { concurrency: 1 }, s.tokens.read);
  assert.equal(read.status, 403);
  const ok = await s.request<QueueView>('PUT', '/v1/queues/fresh', { concurrency: 3, rateLimit: { max: 5, perMs: 1000 }, dedupe: true });
  assert.deepEqual(ok.body.settings, { concurrency: 3, rateLimit: { max: 5, perMs: 1000 }, dedupe: true, paused: false, defaultTimeoutMs: null });
  const cleared = await s.request<QueueView>('PUT', '/v1/queues/fresh', { concurrency: null, rateLimit: null });
  assert.deepEqual(cleared.body.settings, { concurrency: null, rateLimit: null, dedupe: true, paused: false, defaultTimeoutMs: null });
  assert.deepEqual((await s.request<{ items: QueueView[] }>('GET', '/v1/queues')).body.items.map((q) => q.name), ['fresh']);
});

test('dedupe with replicas: the copies of one submission are not duplicates of each other; a second submission is', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  await s.request('PUT', '/v1/queues/default', { dedupe: true });
  const first = await s.request<JobRecord & { replicaJobs: string[] }>('POST', '/v1/jobs', { command: 'sleep 1', replicas: 3 });
  assert.equal(first.status, 201);
  assert.equal(first.body.replicaJobs.length, 3);
  const again = await s.request<JobRecord & { deduplicated?: boolean }>('POST', '/v1/jobs', { command: 'sleep 1', replicas: 3 });
  assert.equal(again.status, 200);
  assert.equal(again.body.id, first.body.id);
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length, 3);
});
