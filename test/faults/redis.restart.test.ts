import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { assertOnly201And503, audit, markerDir, submitLoad } from '../helpers/audit.js';
import { ownRedis } from '../helpers/own-redis.js';
import { freePort, startServiceReady } from '../helpers/processes.js';
import { startStack } from '../helpers/stack.js';
import { metricValue, parseMetrics } from '../helpers/prom.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


test('Redis restarted during 1000 submissions: every 201 reaches a terminal state; the outage answers 503', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-redis-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const redis = ownRedis(port, dir);
  let server = await redis.start();
  const redisUrl = `redis://127.0.0.1:${port}`;
  const s = await startStack(t, { redisUrl, runner: false, env: { SCHEDULER_REPUBLISH_AFTER_MS: '2000' } }).catch((err: unknown) => {
    redis.stop();
    throw err;
  });
  const markers = markerDir(t);
  const env = { REDIS_URL: redisUrl, RUNNER_CONCURRENCY: '8' };
  await Promise.all([startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'rr-a' }), startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'rr-b' })]);
  t.after(() => redis.stop()); // after-hooks run in order: this Redis goes after the services using it

  const load = submitLoad(s, 1000, 10, markers.command('sleep 0.02'));
  while (load.accepted.length < 300) await sleep(20);
  // SHUTDOWN flushes the AOF; the same data dir is loaded again on restart.
  const exited = once(server, 'exit');
  const admin = new Redis(port, '127.0.0.1', { retryStrategy: () => null, maxRetriesPerRequest: 0 });
  admin.on('error', () => undefined);
  await admin.shutdown().catch(() => undefined);
  admin.disconnect();
  await exited;
  await sleep(1500);
  server = await redis.start();
  await load.done;

  assertOnly201And503(load);
  const a = await audit(s, 'restart Redis during 1000 submissions', load.accepted, markers.dir);
  assert.deepEqual([a.accepted, a.succeeded, a.duplicated, a.missing, a.notEnded.length], [1000, 1000, 0, 0, 0]);
  // The outage shows in the metrics: the broker connections of the API and scheduler were lost and came back.
  const reconnects = metricValue(parseMetrics(await s.metrics.registry.metrics()), 'drover_broker_reconnects_total', { broker: 'bullmq' });
  assert.ok(reconnects >= 1, `drover_broker_reconnects_total{broker="bullmq"} is ${reconnects}`);
});
