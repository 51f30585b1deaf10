import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { record } from '../helpers/audit.js';
import { ownRedis } from '../helpers/own-redis.js';
import { freePort } from '../helpers/processes.js';
import { metricValue, parseMetrics } from '../helpers/prom.js';
import { startStack } from '../helpers/stack.js';
import { until } from '../helpers/until.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LEASE_MS = 1000;
const BALLAST_KEYS = 8;

type Job = JobRecord & { attemptHistory?: { status: string }[] };

/** Keys matching a pattern (SCAN), to show that a refused request left nothing behind. */
async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

test('Redis full (maxmemory, noeviction): submit and cancel answer 503 STORE_FULL and store nothing; jobs that finish meanwhile run once and keep their real outcome', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-redis-full-'));
  // Jobs may run as another user than the test (RUNNER_JOB_USER): they write their markers here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const server = ownRedis(port, dir);
  await server.start();
  const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
  const go = join(dir, 'go');
  // First after-hook: whatever happened, Redis takes writes again and the jobs may end, so the stack can close.
  t.after(async () => {
    if (existsSync(dir)) writeFileSync(go, '');
    await admin.config('SET', 'maxmemory', '0').catch(() => undefined);
    admin.disconnect();
  });
  const s = await startStack(t, { redisUrl: `redis://127.0.0.1:${port}`, env: { RUNNER_LEASE_MS: String(LEASE_MS), RUNNER_CONCURRENCY: '4' } }).catch((err: unknown) => {
    server.stop();
    throw err;
  });
  t.after(() => server.stop()); // after the stack's own hooks: the services close first
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const base = `{${s.prefix}}`;
  /** What the job's runs wrote, one entry per run. */
  const marks = (id: string, kind: 'runs' | 'done'): string[] =>
    readdirSync(dir).filter((f) => f.startsWith(`${id}.${kind}.`)).map((f) => readFileSync(join(dir, f), 'utf8').trim()).sort();

  // Each job leaves a file per run (each run may have a uid of its own), waits for the go file, leaves a done
  // file, and exits with its own status.
  const job = (exit: number, retries: number) => ({
    command: `echo "$DROVER_ATTEMPT" > "$(mktemp ${dir}/$DROVER_JOB_ID.runs.XXXXXXXX)"; while [ ! -e ${go} ]; do sleep 0.05; done; ` +
      `echo done > "$(mktemp ${dir}/$DROVER_JOB_ID.done.XXXXXXXX)"; exit ${exit}`,
    retries,
    onLost: 'retry',
  });
  const submitted = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: [job(0, 2), job(0, 2), job(0, 2), job(7, 0)] });
  assert.equal(submitted.status, 201);
  const ids = submitted.body.jobs.map((j) => j.id);
  await until('every job to run', async () => {
    const jobs = await Promise.all(ids.map(async (id) => (await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body));
    return jobs.every((j) => j.status === 'running') && ids.every((id) => marks(id, 'runs').length > 0);
  });

  // Fill Redis: ballast, then maxmemory below what it holds. Writes that need memory are refused from now on.
  for (let i = 0; i < BALLAST_KEYS; i++) await admin.set(`ballast:${i}`, Buffer.alloc(1024 * 1024, 1));
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
  // Half the ballast below: used_memory counts client buffers too (the ballast's query buffer), which Redis shrinks
  // within a second or two; 2 MB below was sometimes above what remained once it had.
  await admin.config('SET', 'maxmemory', String(used - (BALLAST_KEYS / 2) * 1024 * 1024));
  await assert.rejects(admin.set('probe', 'x'), /OOM command not allowed/, 'Redis is full');

  const before = {
    jobs: await countKeys(admin, `${base}:job:*`),
    indexed: await admin.zcard(`${base}:idx:all`),
    outbox: await admin.zcard(`${base}:outbox`),
    broker: await countKeys(admin, `${base}:bull:*`),
    submitted: metricValue(parseMetrics(await s.metrics.registry.metrics()), 'drover_jobs_submitted_total'),
  };
  const refusals = [
    await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', { command: 'true' }),
    await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs/batch', { jobs: [{ command: 'true', replicas: 3 }, { command: 'true' }] }),
    await s.request<{ error: { code: string; message: string } }>('POST', '/v1/workflows', { name: 'w', steps: [{ name: 'a', job: { command: 'true' } }, { name: 'b', dependsOn: ['a'], job: { command: 'true' } }] }),
    await s.request<{ error: { code: string; message: string } }>('POST', `/v1/jobs/${ids[0]}/cancel`),
  ];
  for (const r of refusals) {
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'STORE_FULL');
    assert.match(r.body.error.message, /full.*nothing was changed/);
  }
  const after = {
    jobs: await countKeys(admin, `${base}:job:*`),
    indexed: await admin.zcard(`${base}:idx:all`),
    outbox: await admin.zcard(`${base}:outbox`),
    broker: await countKeys(admin, `${base}:bull:*`),
    submitted: metricValue(parseMetrics(await s.metrics.registry.metrics()), 'drover_jobs_submitted_total'),
  };
  assert.deepEqual(after, before, 'no record, index entry, outbox entry or broker message was left by the refused requests');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${ids[0]}`)).body.cancelRequested, false, 'the refused cancel changed nothing');

  // The jobs end while Redis is still full. Their runner cannot write the outcomes: it keeps them, and the leases,
  // for several lease periods; the scheduler must not take the jobs for lost and run them again.
  writeFileSync(go, '');
  await until('every job process to end', () => ids.every((id) => marks(id, 'done').length > 0));
  await sleep(4 * LEASE_MS);
  for (const id of ids) {
    assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body.status, 'running', `${id} waits for its outcome to be stored`);
  }

  // An operator frees memory: the outcomes land.
  await admin.del(...Array.from({ length: BALLAST_KEYS }, (_, i) => `ballast:${i}`));
  const jobs: Job[] = [];
  for (const id of ids) jobs.push((await s.request<Job>('GET', `/v1/jobs/${(await s.waitFor(id)).id}`)).body);
  const runs = ids.map((id) => marks(id, 'runs'));
  record({ scenario: 'Redis full while jobs finish', accepted: ids.length, succeeded: jobs.filter((j) => j.status === 'succeeded').length, lost: jobs.flatMap((j) => j.attemptHistory ?? []).filter((a) => a.status === 'lost').length, duplicated: runs.filter((r) => r.length > 1).length, missing: 0 });
  assert.deepEqual(runs, ids.map(() => ['1']), 'each job ran exactly once');
  assert.deepEqual(jobs.map((j) => [j.status, j.exitCode, j.attempts]), [['succeeded', 0, 1], ['succeeded', 0, 1], ['succeeded', 0, 1], ['failed', 7, 1]]);
  for (const j of jobs) assert.deepEqual((j.attemptHistory ?? []).map((a) => a.status), [j.status], `${j.id}: one attempt, not lost`);

  // And the API takes work again.
  assert.equal((await s.run({ command: 'true' })).status, 'succeeded');
});
