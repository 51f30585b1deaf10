import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { assertOnly201And503, audit, markerDir, submitLoad } from '../helpers/audit.js';
import { jobTempDir } from '../helpers/job-dir.js';
import { startOwnRabbitMQ, watchBroker } from '../helpers/own-rabbitmq.js';
import { startServiceReady } from '../helpers/processes.js';
import { AMQP_URL, startStack } from '../helpers/stack.js';
import { metricValue, parseMetrics } from '../helpers/prom.js';
import { until } from '../helpers/until.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('RabbitMQ restarted during 1000 submissions: every 201 reaches a terminal state, none runs twice; 503 meanwhile', async (t) => {
  // The broker restarted is a node of the test's own; the shared one must come through untouched.
  const shared = await watchBroker(t, AMQP_URL);
  const rabbit = await startOwnRabbitMQ(t);
  const s = await startStack(t, { broker: 'rabbitmq', amqpUrl: rabbit.url, runner: false, env: { SCHEDULER_REPUBLISH_AFTER_MS: '1000' } });
  const markers = markerDir(t);
  const env = { DROVER_BROKER: 'rabbitmq', AMQP_URL: rabbit.url, RUNNER_CONCURRENCY: '8', SCHEDULER_REPUBLISH_AFTER_MS: '1000' };
  await Promise.all([startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'r1' }), startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'r2' })]);

  const load = submitLoad(s, 1000, 10, markers.command('sleep 0.02'));
  while (load.accepted.length < 300) await sleep(20);
  await rabbit.stopApp();
  // The API learns of the lost connection from its socket's close event, which a busy event loop may handle after
  // a request already read: readiness must turn within a moment, not necessarily on the very next request.
  await until('readiness to report the broker down', async () => (await s.request('GET', '/readyz', undefined, null)).status === 503, 5000, 20);
  await sleep(1500);
  await rabbit.startApp();
  await load.done;

  assertOnly201And503(load);
  const a = await audit(s, 'restart RabbitMQ during 1000 submissions', load.accepted, markers.dir);
  assert.deepEqual([a.accepted, a.succeeded, a.duplicated, a.missing, a.notEnded.length], [1000, 1000, 0, 0, 0]);
  // The outage shows in the metrics: the broker connections of the API and scheduler were lost and came back.
  const reconnects = metricValue(parseMetrics(await s.metrics.registry.metrics()), 'drover_broker_reconnects_total', { broker: 'rabbitmq' });
  assert.ok(reconnects >= 1, `drover_broker_reconnects_total{broker="rabbitmq"} is ${reconnects}`);
  await shared.assertUntouched();
});

test('kill -9 a runner holding unacked messages: they come back and finish on another runner', async (t) => {
  const s = await startStack(t, { broker: 'rabbitmq', runner: false });
  const dir = jobTempDir(t, 'drover-rmq-');
  const env = { DROVER_BROKER: 'rabbitmq', RUNNER_CONCURRENCY: '4', RUNNER_LEASE_MS: '1000' };
  const doomed = await startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'doomed' });
  // Hangs until the file "go" exists, which it does only after the first runner is killed.
  const jobs = await Promise.all(Array.from({ length: 6 }, () => s.submit({ command: `until [ -e ${dir}/go ]; do sleep 0.05; done`, retries: 1 })));
  // Submitted concurrently, so any four of the six hold the runner's slots.
  let held: string[] = [];
  for (let i = 0; held.length < 4; i++) {
    assert.ok(i < 400, 'the first runner did not take four jobs');
    await sleep(50);
    const list = await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?status=running');
    held = list.body.items.map((j) => j.id);
  }
  doomed.kill('SIGKILL');
  await once(doomed, 'exit');
  writeFileSync(join(dir, 'go'), '');
  await startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'heir' });
  const done = await Promise.all(jobs.map((j) => s.waitFor(j.id, undefined, 30_000)));
  assert.deepEqual(done.map((j) => [j.status, j.runnerId]), done.map(() => ['succeeded', 'heir']));
  const attempts = (ids: string[]): number[] => done.filter((j) => ids.includes(j.id)).map((j) => j.attempts);
  assert.deepEqual(attempts(held), [2, 2, 2, 2], 'the killed attempts were lost and retried');
  assert.deepEqual(attempts(jobs.map((j) => j.id).filter((id) => !held.includes(id))), [1, 1], 'the jobs still queued ran once');
});
