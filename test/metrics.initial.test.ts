import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scrape, type Sample } from './helpers/prom.js';
import { startStack, testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

const has = (m: Sample[], name: string, labels: Record<string, string>): Sample | undefined =>
  m.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

test('counters have a series at 0 from the first scrape for the labels that exist; consumers per queue', async (t) => {
  const served = `served-${testPrefix().slice(5, 13)}`;
  const orphan = `orphan-${testPrefix().slice(5, 13)}`;
  const s = await startStack(t, { env: { RUNNER_QUEUES: served } });
  const read = (): Promise<Sample[]> => scrape(`${s.url}/metrics`, s.tokens.read);

  // Nothing happened yet: the fixed label sets are there at 0.
  let m = await read();
  for (const outcome of ['fired', 'skipped', 'misfired']) assert.equal(has(m, 'drover_schedule_fires_total', { outcome })?.value, 0, outcome);
  for (const outcome of ['delivered', 'failed', 'given_up']) assert.equal(has(m, 'drover_webhook_deliveries_total', { outcome })?.value, 0, outcome);
  assert.equal(has(m, 'drover_broker_reconnects_total', { broker: 'bullmq' })?.value, 0);
  // The control: a queue nobody has used has no series.
  assert.equal(has(m, 'drover_jobs_lost_total', { queue: orphan }), undefined);

  // Two queues exist once they have settings: every per-queue counter starts at 0 for both.
  for (const q of [served, orphan]) assert.equal((await s.request('PUT', `/v1/queues/${q}`, { concurrency: 5 })).status, 200);
  m = await read();
  for (const q of [served, orphan]) {
    for (const name of ['drover_jobs_submitted_total', 'drover_jobs_started_total', 'drover_jobs_retried_total', 'drover_jobs_lost_total']) {
      assert.equal(has(m, name, { queue: q })?.value, 0, `${name}{queue="${q}"}`);
    }
    for (const status of ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost']) assert.equal(has(m, 'drover_jobs_finished_total', { queue: q, status })?.value, 0);
  }
  // The in-process runner serves one of them.
  await until('the runner registered', async () => has(await read(), 'drover_queue_consumers', { queue: served })?.value === 1);
  assert.equal(has(await read(), 'drover_queue_consumers', { queue: orphan })?.value, 0, 'no runner serves the other');

  assert.equal(has(await read(), 'drover_queue_oldest_queued_seconds', { queue: orphan }), undefined, 'nothing queued there yet');
  const waiting = await s.submit({ queue: orphan, command: 'true' });
  m = await read();
  assert.ok((has(m, 'drover_queue_oldest_queued_seconds', { queue: orphan })?.value ?? -1) >= 0, 'the job nobody serves is waiting');
  assert.equal(has(m, 'drover_runners', { state: 'running' })?.value, 1);
  assert.equal(has(m, 'drover_runners', { state: 'offline' })?.value, 0);
  assert.equal(has(m, 'drover_redis_connected', { connection: 'store' })?.value, 1);
  assert.equal((await s.request('POST', `/v1/jobs/${waiting.id}/cancel`)).status, 200);

  // Counting goes on from 0.
  const job = await s.run({ queue: served, command: 'exit 2' });
  assert.equal(job.status, 'failed');
  m = await read();
  assert.equal(has(m, 'drover_jobs_finished_total', { queue: served, status: 'failed' })?.value, 1);
  assert.equal(has(m, 'drover_jobs_finished_total', { queue: served, status: 'succeeded' })?.value, 0);
});

test('drover_schedules_failing counts enabled schedules whose latest finished run failed (a succeeding one is the control)', async (t) => {
  const s = await startStack(t);
  const read = (): Promise<Sample[]> => scrape(`${s.url}/metrics`, s.tokens.read);
  assert.equal(has(await read(), 'drover_schedules_failing', {})?.value, 0);
  for (const [name, command] of [['breaks', 'exit 1'], ['works', 'true']] as const) {
    assert.equal((await s.request('POST', '/v1/schedules', { name, cron: '* * * * * *', job: { command } })).status, 201);
  }
  const finished = async (name: string): Promise<boolean> => {
    const runs = (await s.request<{ items: { status: string }[] }>('GET', `/v1/schedules/${name}/runs?limit=5`)).body.items;
    return runs.some((r) => r.status === 'failed' || r.status === 'succeeded');
  };
  await until('both schedules ran once', async () => (await finished('breaks')) && (await finished('works')), 20_000);
  assert.equal(has(await read(), 'drover_schedules_failing', {})?.value, 1);
  // Disabled, it no longer counts.
  assert.equal((await s.request('POST', '/v1/schedules/breaks/disable')).status, 200);
  assert.equal(has(await read(), 'drover_schedules_failing', {})?.value, 0);
  await s.request('POST', '/v1/schedules/works/disable');
});
