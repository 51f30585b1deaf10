import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { JobStore, createRedis, type FinishInput, type JobRecord } from '@drover/core';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';

type Attempts = { attemptHistory: { attempt: number; status: string; startedAt: string; finishedAt: string }[] };
type Record_ = JobRecord & Attempts;

const LEASE_MS = 60_000;

function storeOf(t: TestContext, s: Stack): JobStore {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  return new JobStore(redis, s.prefix);
}

const get = async (s: Stack, id: string): Promise<Record_> => (await s.request<Record_>('GET', `/v1/jobs/${id}`)).body;

/**
 * Plays one run of a daemon with an injected clock: claimed and spawned at `at`, ended `ranMs` later with `outcome`.
 * Returns what the store decided and, for a restart, the pause it chose (runAt minus the end).
 */
async function run(s: Stack, store: JobStore, id: string, at: number, ranMs: number, outcome: FinishInput['outcome'] = 'failed') {
  const c = await store.claim(id, 'r', LEASE_MS, at);
  assert.ok('attempt' in c, `not claimable: ${JSON.stringify(c)}`);
  const end = at + ranMs;
  const finished = await store.finish({
    id, runnerId: 'r', attempt: c.attempt, outcome, exitCode: outcome === 'failed' ? 3 : null, signal: null, error: null,
    outputBytes: 0, truncated: false, retryDelayMs: 0, startedAt: at, usage: null,
  }, end);
  const job = await get(s, id);
  const pauseMs = job.status === 'delayed' ? Date.parse(job.runAt!) - end : job.status === 'queued' ? 0 : null;
  // Due: back to queued for the next claim.
  if (job.status === 'delayed') await store.promoteDue(100, Date.parse(job.runAt!));
  return { finished, job, pauseMs, next: end + (pauseMs ?? 0) };
}

test('a crash-looping daemon backs off: intervalMs doubled per short run, capped; a stable run starts over', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const daemon = await s.submit({ command: 'exit 3', type: 'daemon', intervalMs: 1000, restartBackoffMaxMs: 5000 });
  assert.deepEqual([daemon.intervalMs, daemon.restartBackoffMaxMs, daemon.maxRestarts, daemon.restarts, daemon.maxLost], [1000, 5000, null, 0, null]);
  let now = Date.now();
  const pauses: (number | null)[] = [];
  const step = async (ranMs: number): Promise<void> => {
    const r = await run(s, store, daemon.id, now, ranMs);
    pauses.push(r.pauseMs);
    now = r.next;
  };
  for (let i = 0; i < 5; i++) await step(100);
  // The cap (5 s) is under a minute: a run of 5 s is stable, and the next short one starts at intervalMs again.
  await step(5000);
  await step(4999);
  await step(100);
  assert.deepEqual(pauses, [1000, 2000, 4000, 5000, 5000, 1000, 1000, 2000]);
  const job = await get(s, daemon.id);
  assert.deepEqual([job.restarts, job.attempts, job.failureCount, job.status], [8, 8, 8, 'queued']);
});

test('the default cap is 5 minutes and a run of a minute is stable', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const daemon = await s.submit({ command: 'exit 3', type: 'daemon', intervalMs: 60_000 });
  assert.equal(daemon.restartBackoffMaxMs, 300_000);
  let now = Date.now();
  const pauses: (number | null)[] = [];
  for (const ranMs of [10, 10, 10, 10, 59_999, 60_000, 10]) {
    const r = await run(s, store, daemon.id, now, ranMs);
    pauses.push(r.pauseMs);
    now = r.next;
  }
  assert.deepEqual(pauses, [60_000, 120_000, 240_000, 300_000, 300_000, 60_000, 60_000]);
});

test('maxRestarts: after that many restarts the daemon ends failed and says why; lost runs are not counted', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const daemon = await s.submit({ command: 'exit 3', type: 'daemon', intervalMs: 10, maxRestarts: 2 });
  let now = Date.now();
  // A lost run (runner shut down, or its lease expired) restarts it at once, uncounted.
  let r = await run(s, store, daemon.id, now, 10, 'lost');
  assert.deepEqual([r.finished.kind, r.pauseMs, r.job.restarts, r.job.lostCount], ['retry', 0, 0, 1]);
  now = r.next;
  assert.ok('attempt' in (await store.claim(daemon.id, 'ghost', 1000, now)));
  assert.deepEqual(await store.expireLeases(100, now + 1001), [{ id: daemon.id, queue: 'default', status: 'queued' }]);
  now += 1001;
  for (const expected of ['retry', 'retry', 'final']) {
    r = await run(s, store, daemon.id, now, 10);
    assert.equal(r.finished.kind, expected);
    now = r.next;
  }
  const job = await get(s, daemon.id);
  assert.deepEqual([job.status, job.restarts, job.attempts, job.lostCount], ['failed', 2, 5, 2]);
  assert.equal(job.error, 'the daemon was restarted 2 times (maxRestarts 2); its last run ended failed with exit code 3');
});

test("a daemon's attempt history keeps its newest 100 entries however often it restarts", async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const daemon = await s.submit({ command: 'true', type: 'daemon' });
  const now = Date.now();
  for (let i = 0; i < 130; i++) await run(s, store, daemon.id, now, 1, 'lost');
  const job = await get(s, daemon.id);
  assert.equal(job.attempts, 130);
  assert.equal(job.attemptHistory.length, 100);
  assert.deepEqual([job.attemptHistory[0]!.attempt, job.attemptHistory.at(-1)!.attempt], [31, 130]);
});

test('real time: a crashing daemon restarts with growing pauses and ends failed at maxRestarts', async (t) => {
  const s = await startStack(t);
  const daemon = await s.submit({ command: 'exit 3', type: 'daemon', intervalMs: 100, restartBackoffMaxMs: 400, maxRestarts: 3 });
  const job = await get(s, (await s.waitFor(daemon.id)).id);
  assert.equal(job.status, 'failed');
  assert.deepEqual([job.attempts, job.restarts], [4, 3]);
  assert.match(job.error ?? '', /restarted 3 times \(maxRestarts 3\)/);
  const h = job.attemptHistory;
  assert.deepEqual(h.map((a) => a.status), ['failed', 'failed', 'failed', 'failed']);
  // The pauses are lower bounds: each next run starts no earlier than its backoff allows.
  const gap = (i: number): number => Date.parse(h[i + 1]!.startedAt) - Date.parse(h[i]!.finishedAt);
  [100, 200, 400].forEach((min, i) => assert.ok(gap(i) >= min, `pause ${i + 1}: ${gap(i)} ms, at least ${min}`));
});

test('daemon restart fields: bad input is a 400 naming the field, and stores nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ command: 'true', restartBackoffMaxMs: 1000 }, /restartBackoffMaxMs: only applies to type "daemon"/],
    [{ command: 'true', maxRestarts: 3 }, /maxRestarts: only applies to type "daemon"/],
    [{ command: 'true', type: 'daemon', restartBackoffMaxMs: 0 }, /restartBackoffMaxMs/],
    [{ command: 'true', type: 'daemon', maxRestarts: -1 }, /maxRestarts/],
    [{ command: 'true', type: 'daemon', maxRestarts: 'many' }, /maxRestarts/],
  ];
  for (const [body, message] of cases) {
    const res = await s.request<{ error: { message: string } }>('POST', '/v1/jobs', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.body.error.message, message);
  }
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
});
