import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { createLogger, type DroverEvent, type JobRecord } from '@drover/core';
import { Runner } from '@drover/runner';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface ErrorBody {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

/** A runner started later on the stack's prefix; closed after the test. */
async function lateRunner(t: TestContext, s: Stack): Promise<Runner> {
  const runner = new Runner({ config: s.config, logger: createLogger('silent', 'test') });
  t.after(() => runner.close());
  await runner.start();
  return runner;
}

const logLines = async (s: Stack, id: string): Promise<string[]> =>
  (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs`)).body.items.map((l) => l.line);

const expiredEvents = async (s: Stack, id: string): Promise<DroverEvent[]> =>
  (await s.request<{ items: DroverEvent[] }>('GET', '/v1/events?types=job.expired&limit=1000')).body.items.filter((e) => e.jobId === id);

/** The job ended expired without an attempt: no process, no output, the event said so. */
async function assertExpiredUnrun(s: Stack, job: JobRecord): Promise<void> {
  assert.equal(job.status, 'expired', JSON.stringify(job));
  assert.equal(job.attempts, 0, 'no attempt started');
  assert.equal(job.startedAt, null);
  assert.equal(job.pid, null);
  assert.ok(job.finishedAt !== null && Date.parse(job.finishedAt) >= Date.parse(job.expiresAt!), 'ended at or after its deadline');
  assert.match(job.error ?? '', /deadline/);
  assert.deepEqual(await logLines(s, job.id), [], 'no output: it never ran');
  assert.equal((await expiredEvents(s, job.id)).length, 1, 'one job.expired event');
}

brokerTest('a delayed job whose runAt is after its deadline ends expired at the deadline and never runs', async (t, broker) => {
  const s = await startStack(t, { broker });
  const now = Date.now();
  const late = await s.submit({ command: 'echo ran', runAt: new Date(now + 60_000).toISOString(), expiresAt: new Date(now + 300).toISOString() });
  assert.equal(late.status, 'delayed');
  assert.equal(late.expiresAt, new Date(now + 300).toISOString(), 'the record shows the deadline');
  // Control: the same, with its start before the deadline, runs.
  const inTime = await s.submit({ command: 'echo ran', delayMs: 100, ttlMs: 60_000 });
  assert.equal((await s.waitFor(inTime.id)).status, 'succeeded');
  assert.deepEqual(await logLines(s, inTime.id), ['ran']);
  await assertExpiredUnrun(s, await s.waitFor(late.id));
});

brokerTest('a queued job nobody claims ends expired by the scheduler\'s sweep; one without a deadline waits on', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const doomed = await s.submit({ command: 'echo ran', ttlMs: 200 });
  assert.equal(doomed.status, 'queued');
  assert.equal(Date.parse(doomed.expiresAt!), Date.parse(doomed.createdAt) + 200, 'ttlMs counts from the creation');
  const patient = await s.submit({ command: 'echo ran' });
  await assertExpiredUnrun(s, await s.waitFor(doomed.id));
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${patient.id}`)).body.status, 'queued', 'control: no deadline, still waiting');
  await until('the stats count it', async () => {
    const r = await s.request<{ queues: { name: string; totals: Record<string, number> }[] }>('GET', '/v1/stats');
    return r.body.queues?.find((q) => q.name === 'default')?.totals.expired === 1;
  }, 15_000);
  const listed = await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?status=expired');
  assert.deepEqual(listed.body.items.map((j) => j.id), [doomed.id], 'listed by its status');
  // A runner that comes later runs the patient one; the expired one's message is dropped.
  await lateRunner(t, s);
  assert.equal((await s.waitFor(patient.id)).status, 'succeeded');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${doomed.id}`)).body.status, 'expired');
  assert.deepEqual(await logLines(s, doomed.id), []);
  // A finished state like the others: the queue's bulk retry runs it again (a new job), its clean deletes it.
  const retried = await s.request<{ count: number; ids: string[] }>('POST', '/v1/queues/default/retry', { status: 'expired' });
  assert.equal(retried.status, 200, JSON.stringify(retried.body));
  assert.equal(retried.body.count, 1);
  assert.deepEqual(retried.body.ids, [doomed.id]);
  const all = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items;
  const copy = all.find((j) => j.labels['drover.retryOf'] === doomed.id);
  assert.ok(copy, JSON.stringify(all.map((j) => j.labels)));
  const again = await s.waitFor(copy.id);
  assert.equal(Date.parse(again.expiresAt!), Date.parse(again.createdAt) + 200, 'the new job\'s ttlMs counts from its own creation');
  const cleaned = await s.request<{ count: number }>('DELETE', '/v1/queues/default/jobs?status=expired');
  assert.equal(cleaned.status, 200, JSON.stringify(cleaned.body));
  assert.equal(cleaned.body.count, 1);
  assert.equal((await s.request('GET', `/v1/jobs/${doomed.id}`)).status, 404);
});

brokerTest('a job claimed after its deadline ends expired in the claim and never spawns', async (t, broker) => {
  // No scheduler: nothing sweeps; the runner that gets the message after the deadline must refuse to start it.
  const s = await startStack(t, { broker, runner: false, scheduler: false });
  const doomed = await s.submit({ command: 'echo ran', ttlMs: 150 });
  const control = await s.submit({ command: 'echo ran' });
  await until('the deadline passed', () => Date.now() > Date.parse(doomed.expiresAt!) + 50);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${doomed.id}`)).body.status, 'queued', 'nothing swept it');
  await lateRunner(t, s);
  assert.equal((await s.waitFor(control.id)).status, 'succeeded', 'control: the runner took its messages');
  await assertExpiredUnrun(s, await s.waitFor(doomed.id));
});

brokerTest('expiry: a deadline in the past, both forms, or bad values are 400 with nothing stored; templates take ttlMs', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const past = new Date(Date.now() - 1000).toISOString();
  const future = new Date(Date.now() + 60_000).toISOString();
  const bad: [Record<string, unknown>, string][] = [
    [{ command: 'true', expiresAt: past }, 'expiresAt'],
    [{ command: 'true', expiresAt: future, ttlMs: 1000 }, 'expiresAt'],
    [{ command: 'true', expiresAt: 'tomorrow' }, 'expiresAt'],
    [{ command: 'true', ttlMs: 0 }, 'ttlMs'],
    [{ command: 'true', ttlMs: 1.5 }, 'ttlMs'],
    [{ command: 'true', ttlMs: '1000' }, 'ttlMs'],
  ];
  for (const [body, field] of bad) {
    const res = await s.request<ErrorBody>('POST', '/v1/jobs', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.body.error.code, 'VALIDATION');
    assert.ok(res.body.error.details?.some((d) => d.field.includes(field)), JSON.stringify(res.body));
  }
  const batch = await s.request('POST', '/v1/jobs/batch', { jobs: [{ command: 'true', ttlMs: 1000 }, { command: 'true', expiresAt: past }] });
  assert.equal(batch.status, 400);
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length, 0, 'nothing stored');

  const ok = await s.submit({ command: 'true', expiresAt: future });
  assert.equal(ok.expiresAt, future);
  assert.equal((await s.submit({ command: 'true' })).expiresAt, null, 'no deadline unless asked');
  // A schedule's job is made at each fire: a deadline relative to it (ttlMs) fits; an absolute one does not.
  assert.equal((await s.request('POST', '/v1/schedules', { name: 'soon', cron: '0 0 1 1 *', job: { command: 'true', ttlMs: 5000 } })).status, 201);
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/soon/trigger', {});
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  assert.equal(Date.parse(fired.body.expiresAt!), Date.parse(fired.body.createdAt) + 5000);
  assert.equal((await s.request('POST', '/v1/schedules', { name: 'never', cron: '0 0 1 1 *', job: { command: 'true', expiresAt: future } })).status, 400);
});
