import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { JobStore, createLogger, createRedis, type FinishInput, type JobRecord } from '@drover/core';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';

type Attempts = { attemptHistory: { attempt: number; runnerId: string; status: string; error: string | null }[] };

/** The store on the stack's prefix: the tests play the runner (claim, finish) and the scheduler (expire) themselves. */
function storeOf(t: TestContext, s: Stack): JobStore {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  return new JobStore(redis, s.prefix);
}

const LEASE_MS = 1000;

/** Claims the job as `runner` at `now`; fails the test when the job was not claimable. */
async function claim(store: JobStore, id: string, runner: string, now: number): Promise<number> {
  const c = await store.claim(id, runner, LEASE_MS, now);
  assert.ok('attempt' in c, `job ${id} could not be claimed: ${JSON.stringify(c)}`);
  return c.attempt;
}

const ended = (id: string, runnerId: string, attempt: number, outcome: FinishInput['outcome']): FinishInput => ({
  id, runnerId, attempt, outcome, exitCode: outcome === 'failed' ? 1 : null, signal: null,
  error: outcome === 'lost' ? 'the runner shut down before the job finished' : null,
  outputBytes: 0, truncated: false, retryDelayMs: 0, startedAt: null, usage: null,
});

const get = async (s: Stack, id: string): Promise<JobRecord & Attempts> => (await s.request<JobRecord & Attempts>('GET', `/v1/jobs/${id}`)).body;

test('with the default retries 0, a lost attempt is run again up to maxLost (3) times; the fourth loss is final', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const job = await s.submit({ command: 'true' });
  assert.deepEqual([job.retries, job.onLost, job.maxLost, job.lostCount, job.failureCount], [0, 'retry', 3, 0, 0]);
  let now = Date.now();
  for (let i = 1; i <= 4; i++) {
    assert.equal(await claim(store, job.id, `ghost-${i}`, now), i, 'the attempt number goes on counting');
    now += LEASE_MS + 1;
    const [lost] = await store.expireLeases(100, now);
    assert.equal(lost?.status, i <= 3 ? 'queued' : 'lost');
  }
  const done = await get(s, job.id);
  assert.equal(done.status, 'lost');
  assert.deepEqual([done.attempts, done.lostCount, done.failureCount], [4, 4, 0]);
  assert.equal(done.error, 'lease expired: the runner stopped heartbeating (lost 4 times; maxLost is 3)');
  assert.deepEqual(done.attemptHistory.map((a) => [a.attempt, a.runnerId, a.status]), [1, 2, 3, 4].map((i) => [i, `ghost-${i}`, 'lost']));
});

test('losses and failures have budgets of their own: retries counts failures only, maxLost losses only', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const job = await s.submit({ command: 'true', retries: 1, maxLost: 1, backoff: { type: 'fixed', delayMs: 0 } });
  const now = Date.now();
  // failed (1 of retries 1: again), lost by shutdown (1 of maxLost 1: again), lost by lease expiry (2 > 1: final).
  let a = await claim(store, job.id, 'r', now);
  assert.deepEqual(await store.finish(ended(job.id, 'r', a, 'failed'), now), { kind: 'retry', status: 'queued', queue: 'default' });
  a = await claim(store, job.id, 'r', now);
  assert.deepEqual(await store.finish(ended(job.id, 'r', a, 'lost'), now), { kind: 'retry', status: 'queued', queue: 'default' });
  a = await claim(store, job.id, 'r', now);
  assert.deepEqual(await store.expireLeases(100, now + LEASE_MS + 1), [{ id: job.id, queue: 'default', status: 'lost' }]);
  let done = await get(s, job.id);
  assert.deepEqual([done.status, done.attempts, done.failureCount, done.lostCount], ['lost', 3, 1, 2]);

  // The other way round: a failure after a loss still has its retry.
  const other = await s.submit({ command: 'true', retries: 1, maxLost: 1, backoff: { type: 'fixed', delayMs: 0 } });
  a = await claim(store, other.id, 'r', now);
  assert.equal((await store.finish(ended(other.id, 'r', a, 'lost'), now)).kind, 'retry');
  a = await claim(store, other.id, 'r', now);
  assert.equal((await store.finish(ended(other.id, 'r', a, 'failed'), now)).kind, 'retry');
  a = await claim(store, other.id, 'r', now);
  assert.deepEqual(await store.finish(ended(other.id, 'r', a, 'failed'), now), { kind: 'final', status: 'failed' });
  done = await get(s, other.id);
  assert.deepEqual([done.attempts, done.failureCount, done.lostCount], [3, 2, 1]);
});

test('maxLost 0 and onLost discard end the job at its first loss; a lost attempt reported by its runner counts too', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const store = storeOf(t, s);
  const now = Date.now();
  const none = await s.submit({ command: 'true', retries: 5, maxLost: 0 });
  const discard = await s.submit({ command: 'true', retries: 5, onLost: 'discard' });
  for (const j of [none, discard]) {
    const a = await claim(store, j.id, 'r', now);
    assert.deepEqual(await store.finish(ended(j.id, 'r', a, 'lost'), now), { kind: 'final', status: 'lost' });
  }
  assert.equal((await get(s, none.id)).error, 'the runner shut down before the job finished (lost 1 times; maxLost is 0)');
  assert.equal((await get(s, discard.id)).error, 'the runner shut down before the job finished');
  assert.equal((await get(s, discard.id)).lostCount, 1);
});

test('a job lost by a runner that died is run again by default and succeeds (through the API, real runner)', async (t) => {
  const s = await startStack(t, { runner: false });
  const store = storeOf(t, s);
  const job = await s.submit({ command: 'echo second life' });
  // A runner claims it and dies at once: nobody renews the 200 ms lease.
  assert.ok('attempt' in (await store.claim(job.id, 'ghost', 200)));
  const { Runner } = await import('@drover/runner');
  const runner = new Runner({ config: s.config, logger: createLogger('silent', 'test') });
  t.after(() => runner.close());
  await runner.start();
  const done = await s.waitFor(job.id);
  assert.equal(done.status, 'succeeded');
  assert.deepEqual([done.attempts, done.lostCount, done.failureCount], [2, 1, 0]);
  assert.deepEqual((await get(s, job.id)).attemptHistory.map((a) => [a.runnerId, a.status]), [['ghost', 'lost'], [runner.id, 'succeeded']]);
});

test('schedules and workflow steps carry maxLost into their jobs', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const created = await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 0 1 1 *', job: { command: 'true', maxLost: 7 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/nightly/trigger', {});
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  assert.equal(fired.body.maxLost, 7);
  const wf = await s.request<{ steps: { jobId: string }[] }>('POST', '/v1/workflows', {
    name: 'budgeted',
    steps: [{ name: 'only', job: { command: 'true', maxLost: 0 } }],
  });
  assert.equal(wf.status, 201, JSON.stringify(wf.body));
  assert.equal((await get(s, wf.body.steps[0]!.jobId)).maxLost, 0);
});

test('maxLost bad input is a 400 naming the field, and stores nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ command: 'true', maxLost: -1 }, /maxLost/],
    [{ command: 'true', maxLost: 101 }, /maxLost/],
    [{ command: 'true', maxLost: 1.5 }, /maxLost/],
    [{ command: 'true', maxLost: '3' }, /maxLost/],
    [{ command: 'true', maxLost: 2, onLost: 'discard' }, /maxLost: only applies with onLost "retry"/],
    [{ command: 'true', maxLost: 2, type: 'daemon' }, /maxLost: does not apply to type "daemon"/],
  ];
  for (const [body, message] of cases) {
    const res = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.body.error.message, message);
  }
  const bad = await s.request('POST', '/v1/schedules', { name: 'bad', cron: '0 0 1 1 *', job: { command: 'true', maxLost: 500 } });
  assert.equal(bad.status, 400);
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
  assert.equal((await s.request('GET', '/v1/schedules/bad')).status, 404);
});
