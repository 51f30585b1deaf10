import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { freshDatabase, poolThenDrop } from './helpers/postgres.js';
import { startServiceReady } from './helpers/processes.js';
import { REDIS_URL, startStack, keysOf } from './helpers/stack.js';
import { until } from './helpers/until.js';
import { Redis } from 'ioredis';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


test('archive: finished jobs go to PostgreSQL; after Redis retention the API reads them through with the same JSON', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '2000' } });
  const sql = poolThenDrop(t, { url: db, drop });
  const jobs = [
    await s.run({ command: 'for i in 1 2 3; do echo line$i; done; echo err >&2' }),
    await s.run({ command: 'echo try; exit 3', retries: 1, backoff: { type: 'fixed', delayMs: 10 }, labels: { team: 'a' } }),
  ];
  const before = await Promise.all(
    jobs.map(async (j) => {
      const page = (await s.request<{ nextCursor: string }>('GET', `/v1/jobs/${j.id}/logs?limit=2`)).body;
      return {
        record: (await s.request<JobRecord>('GET', `/v1/jobs/${j.id}`)).body,
        logs: (await s.request('GET', `/v1/jobs/${j.id}/logs`)).body,
        page,
        next: (await s.request('GET', `/v1/jobs/${j.id}/logs?limit=2&cursor=${page.nextCursor}`)).body,
      };
    }),
  );
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  await until('archived', async () => (await sql.query('SELECT 1 FROM drover_jobs')).rowCount === 2);
  await until('gone from Redis', async () => (await keysOf(redis, `{${s.prefix}}:job:*`)).length === 0);
  for (const [i, j] of jobs.entries()) {
    const after = (await s.request<JobRecord>('GET', `/v1/jobs/${j.id}`)).body;
    assert.deepEqual(after, before[i]!.record, 'the same record, attempt history included');
    assert.deepEqual((await s.request('GET', `/v1/jobs/${j.id}/logs`)).body, before[i]!.logs, 'the same output');
    assert.deepEqual((await s.request('GET', `/v1/jobs/${j.id}/logs?limit=2`)).body, before[i]!.page, 'the same first page');
    const second = (await s.request('GET', `/v1/jobs/${j.id}/logs?limit=2&cursor=${before[i]!.page.nextCursor}`)).body;
    assert.deepEqual(second, before[i]!.next, 'and the same page after its cursor');
  }
  // Lists read through too, with the archive's filters, and one cursor pages over Redis and the archive together.
  const ids = async (q: string): Promise<string[]> => (await s.request<{ items: JobRecord[] }>('GET', `/v1/jobs?${q}`)).body.items.map((j) => j.id);
  assert.deepEqual(await ids('label=team=a'), [jobs[1]!.id]);
  assert.deepEqual(await ids('exitCode=3'), [jobs[1]!.id]);
  assert.deepEqual(await ids('status=succeeded'), [jobs[0]!.id]);
  const fresh = await s.run({ command: 'true', labels: { team: 'a' } });
  assert.deepEqual(await ids('label=team=a'), [fresh.id, jobs[1]!.id], 'a live job and an archived one, newest first');
  const walked: string[] = [];
  for (let cursor = ''; ; ) {
    const page = (await s.request<{ items: JobRecord[]; nextCursor: string | null }>('GET', `/v1/jobs?limit=1${cursor}`)).body;
    walked.push(...page.items.map((j) => j.id));
    if (!page.nextCursor) break;
    cursor = `&cursor=${page.nextCursor}`;
  }
  assert.deepEqual(walked, [fresh.id, jobs[1]!.id, jobs[0]!.id]);
  assert.equal((await s.request('GET', '/v1/jobs?label=nokey')).status, 400);
  // The two jobs of this test (the later one above may or may not be archived yet).
  const mine = jobs.map((j) => j.id);
  const rows = (await sql.query<{ id: string; status: string; exit_code: number }>('SELECT id, status, exit_code FROM drover_jobs WHERE id = ANY($1) ORDER BY id', [mine])).rows;
  assert.deepEqual(rows.map((r) => [r.id, r.status, r.exit_code]), [[jobs[0]!.id, 'succeeded', 0], [jobs[1]!.id, 'failed', 3]]);
  assert.equal((await sql.query('SELECT 1 FROM drover_job_output WHERE job_id = ANY($1)', [mine])).rowCount, 4 + 2);
  assert.deepEqual((await sql.query<{ version: string }>('SELECT version FROM drover_migrations')).rows.map((r) => r.version), ['001_archive.sql', '002_output_partial.sql']);
});

test('archive: two scheduler replicas, one killed with -9 mid-way: every job archived exactly once', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { scheduler: false, env: { DATABASE_URL: db } });
  const env = { DATABASE_URL: db };
  const a = await startServiceReady(t, 'scheduler', s.prefix, env);
  await startServiceReady(t, 'scheduler', s.prefix, env);
  const sql = poolThenDrop(t, { url: db, drop });
  const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 60 }, (_, i) => ({ command: `echo job${i}` })) });
  await sleep(150);
  a.kill('SIGKILL');
  await once(a, 'exit');
  for (const j of res.body.jobs) await s.waitFor(j.id);
  // The killed replica's unacknowledged events are taken over by the other after 10 s idle.
  await until('all archived', async () => Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM drover_jobs')).rows[0]!.n) === 60, 60_000);
  await sleep(500);
  assert.equal(Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM drover_jobs')).rows[0]!.n), 60, 'no job twice');
  assert.equal(Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM drover_job_output')).rows[0]!.n), 60, 'one output line each');
});

test('without an archive, the list filters (label, exit code, schedule, time) work on Redis alone', async (t) => {
  const s = await startStack(t);
  const a = await s.run({ command: 'exit 2', labels: { team: 'x' } });
  const b = await s.run({ command: 'true', labels: { team: 'y' } });
  const ids = async (q: string): Promise<string[]> => (await s.request<{ items: JobRecord[] }>('GET', `/v1/jobs?${q}`)).body.items.map((j) => j.id);
  assert.deepEqual(await ids('label=team=x'), [a.id]);
  assert.deepEqual(await ids('exitCode=0'), [b.id]);
  assert.deepEqual(await ids(`from=${encodeURIComponent(b.createdAt)}`), [b.id]);
  assert.deepEqual(await ids(`to=${encodeURIComponent(b.createdAt)}`), [a.id]);
  assert.deepEqual(await ids('schedule=none'), []);
});

test('archive: a schedule\'s runs include those only the archive still has', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '1500' } });
  t.after(drop);
  await s.request('POST', '/v1/schedules', { name: 'kept', cron: '0 0 1 1 *', job: { command: 'true' } });
  const runs: string[] = [];
  for (let i = 0; i < 2; i++) runs.unshift((await s.request<JobRecord>('POST', '/v1/schedules/kept/trigger', {})).body.id);
  for (const id of runs) await s.waitFor(id);
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  await until('gone from Redis', async () => (await keysOf(redis, `{${s.prefix}}:job:*`)).length === 0);
  const listed = (await s.request<{ items: JobRecord[] }>('GET', '/v1/schedules/kept/runs')).body.items;
  assert.deepEqual(listed.map((j) => j.id), runs);
  assert.ok(listed.every((j) => j.schedule === 'kept' && j.status === 'succeeded'));
});
