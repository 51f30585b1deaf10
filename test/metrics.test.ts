import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { freePort, startServiceReady } from './helpers/processes.js';
import { metricValue, scrape, type Sample } from './helpers/prom.js';
import { startStack, testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';


/** Counts webhook deliveries on loopback. */
async function receiver(t: TestContext): Promise<{ url: string; count: () => number }> {
  let n = 0;
  const srv = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise((r) => srv.close(r)));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`, count: () => n };
}

test('/metrics moves by exactly what ran: submissions, starts, final statuses, retries, histograms, depth, webhooks, schedules', async (t) => {
  const queue = `m${testPrefix().slice(5, 13)}`;
  // The webhook receiver is on loopback, which outbound calls reach only when allowed.
  const s = await startStack(t, { env: { RUNNER_QUEUES: queue, RUNNER_CONCURRENCY: '4', DROVER_OUTBOUND_ALLOW: '127.0.0.1' } });
  const metricsUrl = `${s.url}/metrics`;
  const read = (): Promise<Sample[]> => scrape(metricsUrl, s.tokens.read);

  // The API port serves it to a read token only.
  assert.equal((await fetch(metricsUrl)).status, 401);
  const first = await fetch(metricsUrl, { headers: { authorization: `Bearer ${s.tokens.read}` } });
  assert.equal(first.status, 200);
  assert.match(first.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  await first.text();

  const hook = await receiver(t);
  assert.equal((await s.request('POST', '/v1/webhooks', { url: hook.url, events: ['job.succeeded'], queues: [queue] })).status, 201);

  const specs = [
    ...Array.from({ length: 3 }, () => ({ queue, command: 'true' })),
    ...Array.from({ length: 2 }, () => ({ queue, command: 'exit 3' })),
    { queue, command: 'exit 1', retries: 1, backoff: { type: 'fixed', delayMs: 50 } },
    { queue, command: 'sleep 5', timeoutMs: 300 },
  ];
  const jobs: JobRecord[] = [];
  for (const spec of specs) jobs.push(await s.submit(spec));
  const ended = await Promise.all(jobs.map((j) => s.waitFor(j.id)));
  assert.deepEqual(ended.map((j) => j.status), ['succeeded', 'succeeded', 'succeeded', 'failed', 'failed', 'failed', 'timed_out']);

  await until('3 webhook deliveries recorded', async () => hook.count() === 3 && metricValue(await read(), 'drover_webhook_deliveries_total', { outcome: 'delivered' }) === 3);

  let m = await read();
  const q = { queue };
  assert.equal(metricValue(m, 'drover_jobs_submitted_total', q), 7);
  assert.equal(metricValue(m, 'drover_jobs_started_total', q), 8, 'the retried job started twice');
  assert.equal(metricValue(m, 'drover_jobs_finished_total', { queue, status: 'succeeded' }), 3);
  assert.equal(metricValue(m, 'drover_jobs_finished_total', { queue, status: 'failed' }), 3);
  assert.equal(metricValue(m, 'drover_jobs_finished_total', { queue, status: 'timed_out' }), 1);
  assert.equal(metricValue(m, 'drover_jobs_finished_total', q), 7, 'a retried attempt is not a final status');
  assert.equal(metricValue(m, 'drover_jobs_retried_total', q), 1);
  assert.equal(metricValue(m, 'drover_jobs_lost_total', q), 0);
  // Per attempt: 3 succeeded, 2 + 2 failed, 1 timed out.
  assert.equal(metricValue(m, 'drover_job_duration_seconds_count', { queue, status: 'succeeded' }), 3);
  assert.equal(metricValue(m, 'drover_job_duration_seconds_count', { queue, status: 'failed' }), 4);
  assert.equal(metricValue(m, 'drover_job_duration_seconds_count', { queue, status: 'timed_out' }), 1);
  assert.ok(metricValue(m, 'drover_job_duration_seconds_sum', { queue, status: 'timed_out' }) >= 0.3, 'the timed-out attempt ran at least its timeout');
  // The +Inf bucket holds every observation; the 10 ms bucket cannot hold the 300 ms timeout.
  assert.equal(metricValue(m, 'drover_job_duration_seconds_bucket', { queue, status: 'timed_out', le: '+Inf' }), 1);
  assert.equal(metricValue(m, 'drover_job_duration_seconds_bucket', { queue, status: 'timed_out', le: '0.01' }), 0);
  assert.equal(metricValue(m, 'drover_job_queue_wait_seconds_count', q), 8);
  assert.equal(metricValue(m, 'drover_http_request_duration_seconds_count', { method: 'POST', route: '/v1/jobs', status_code: '201' }), 7);
  const runnerId = s.runner!.id;
  assert.equal(metricValue(m, 'drover_runner_slots', { runner: runnerId }), 4);
  assert.equal(metricValue(m, 'drover_runner_running_jobs', { runner: runnerId }), 0);
  assert.equal(metricValue(m, 'drover_runner_free_slots', { runner: runnerId }), 4);
  for (const state of ['waiting', 'delayed', 'queued', 'parked', 'running']) assert.equal(metricValue(m, 'drover_queue_depth', { queue, state }), 0, state);
  // Bounded labels: no job id appears anywhere.
  const ids = new Set(jobs.map((j) => j.id));
  assert.ok(!m.some((sample) => Object.values(sample.labels).some((v) => ids.has(v) || v.includes('exit 3'))));

  // Depth is read from the store at scrape time: a delayed job shows at once, and is gone once cancelled.
  const delayed = await s.submit({ queue, command: 'true', delayMs: 600_000 });
  m = await read();
  assert.equal(metricValue(m, 'drover_queue_depth', { queue, state: 'delayed' }), 1);
  assert.equal((await s.request('POST', `/v1/jobs/${delayed.id}/cancel`)).status, 200);
  m = await read();
  assert.equal(metricValue(m, 'drover_queue_depth', { queue, state: 'delayed' }), 0);
  assert.equal(metricValue(m, 'drover_jobs_submitted_total', q), 8);

  // A schedule firing every second: each fire is one submission, one lag observation and one `fired`.
  assert.equal((await s.request('POST', '/v1/schedules', { name: `every-second-${queue}`, cron: '* * * * * *', job: { queue, command: 'true' } })).status, 201);
  await until('two fires', async () => metricValue(await read(), 'drover_schedule_fires_total', { outcome: 'fired' }) >= 2, 10_000);
  assert.equal((await s.request('DELETE', `/v1/schedules/every-second-${queue}`)).status, 200);
  const runs = await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/every-second-${queue}/runs`);
  m = await read();
  const fired = metricValue(m, 'drover_schedule_fires_total', { outcome: 'fired' });
  assert.equal(metricValue(m, 'drover_schedule_fire_lag_seconds_count'), fired);
  assert.equal(metricValue(m, 'drover_jobs_submitted_total', q), 8 + fired);
  if (runs.status === 200) assert.equal(runs.body.items.length, fired);
});

test('a service process serves /metrics, /healthz and /readyz on its metrics port', async (t) => {
  const prefix = testPrefix();
  const port = await freePort();
  const id = `metrics-runner-${prefix.slice(5, 13)}`;
  await startServiceReady(t, 'runner', prefix, { DROVER_METRICS_PORT: String(port), RUNNER_ID: id, RUNNER_CONCURRENCY: '3' });
  const base = `http://127.0.0.1:${port}`;
  await until('ready', async () => (await fetch(`${base}/readyz`)).status === 200);
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
  assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  const m = await scrape(`${base}/metrics`);
  assert.equal(metricValue(m, 'drover_runner_slots', { runner: id }), 3);
  assert.equal(metricValue(m, 'drover_runner_free_slots', { runner: id }), 3);
  // Default process metrics, under their standard names.
  assert.ok(m.some((x) => x.name === 'process_cpu_user_seconds_total'));
  assert.ok(m.some((x) => x.name === 'nodejs_eventloop_lag_seconds'));
});
