// Bulk actions on a queue: retry its failed jobs, stop its running ones, delete finished records; and DELETE of one job.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { brokerTest, startStack, type Stack, keysOf } from './helpers/stack.js';
import { cli, cliEnv } from './helpers/cli.js';
import { freshDatabase, poolThenDrop } from './helpers/postgres.js';
import { until } from './helpers/until.js';
import { Redis } from 'ioredis';

type Affected = { count: number; ids: string[]; idsTruncated: boolean; nextCursor?: string | null; skipped?: number; cancelled?: number; deleted?: number };

const list = async (s: Stack, q: string): Promise<JobRecord[]> => (await s.request<{ items: JobRecord[] }>('GET', `/v1/jobs?${q}&limit=1000`)).body.items;

brokerTest('POST /v1/queues/:name/retry runs each failed job of the queue once more, and nothing else', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: 'bulk,other', RUNNER_CONCURRENCY: '8' } });
  const early = await s.run({ queue: 'bulk', command: 'exit 3' });
  const cut = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const failed = [await s.run({ queue: 'bulk', command: 'exit 4' }), await s.run({ queue: 'bulk', command: 'exit 5' })];
  // Controls: a success of the same queue, a failure of another queue, a timed-out job (another state).
  const ok = await s.run({ queue: 'bulk', command: 'true' });
  const elsewhere = await s.run({ queue: 'other', command: 'exit 6' });
  const timedOut = await s.run({ queue: 'bulk', command: 'sleep 5', timeoutMs: 100 });
  assert.deepEqual([early, ...failed, elsewhere].map((j) => j.status), ['failed', 'failed', 'failed', 'failed']);
  assert.equal(timedOut.status, 'timed_out');

  const res = await s.request<Affected>('POST', '/v1/queues/bulk/retry', { status: 'failed', since: cut });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.count, 2);
  assert.deepEqual([...res.body.ids].sort(), failed.map((j) => j.id).sort());
  assert.equal(res.body.idsTruncated, false);
  assert.equal(res.body.nextCursor, null);
  const reruns = await list(s, 'queue=bulk&label=drover.retryOf=' + failed[0]!.id);
  assert.equal(reruns.length, 1);
  for (const j of failed) {
    const again = (await list(s, `queue=bulk&label=drover.retryOf=${j.id}`))[0]!;
    assert.equal((await s.waitFor(again.id)).exitCode, j.exitCode, 'the same command ran once more');
  }
  const retriedOf = async (id: string): Promise<number> => (await list(s, `label=drover.retryOf=${id}`)).length;
  for (const control of [early, ok, elsewhere, timedOut]) assert.equal(await retriedOf(control.id), 0, `${control.id} left alone`);

  // Asked again: the jobs already run again are not; the reruns that failed now are (each once).
  const second = await s.request<Affected>('POST', '/v1/queues/bulk/retry', { status: 'failed', since: cut });
  assert.equal(second.status, 200);
  // The first reruns (of the jobs retried first): the reruns this call made may have failed already too.
  const firstIds = new Set(failed.map((j) => j.id));
  const rerunIds = (await list(s, 'queue=bulk&status=failed')).filter((j) => firstIds.has(j.labels['drover.retryOf'] ?? '')).map((j) => j.id);
  assert.deepEqual([...second.body.ids].sort(), rerunIds.sort());
  for (const j of failed) assert.equal(await retriedOf(j.id), 1, 'still one rerun each');

  // Paged: limit 1 runs one and answers a cursor that goes on.
  const paged = await s.request<Affected>('POST', '/v1/queues/bulk/retry', { status: 'timed_out', limit: 1 });
  assert.deepEqual(paged.body.ids, [timedOut.id]);

  // Bad input changes nothing.
  for (const body of [{ status: 'running' }, { status: 'failed', since: 'yesterday' }, { status: 'failed', extra: 1 }, {}, { status: 'failed', cursor: 'x' }]) {
    const bad = await s.request<{ error: { code: string } }>('POST', '/v1/queues/bulk/retry', body);
    assert.equal(bad.status, 400, JSON.stringify(body));
  }
  assert.equal(await retriedOf(early.id), 0);
  assert.equal((await s.request('POST', '/v1/queues/no-such-queue/retry', { status: 'failed' })).status, 404);
});

brokerTest('DELETE /v1/queues/:name/jobs?status=running stops the running jobs of that queue only', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: 'bulk,other', RUNNER_CONCURRENCY: '8' } });
  const running = [await s.submit({ queue: 'bulk', command: 'sleep 30' }), await s.submit({ queue: 'bulk', command: 'sleep 30' })];
  const waiting = await s.submit({ queue: 'bulk', command: 'true', delayMs: 600_000 });
  const elsewhere = await s.submit({ queue: 'other', command: 'sleep 30' });
  for (const j of [...running, elsewhere]) await s.waitFor(j.id, (r) => r.status === 'running');
  const res = await s.request<Affected>('DELETE', '/v1/queues/bulk/jobs?status=running');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.cancelled, 2);
  assert.deepEqual([...res.body.ids].sort(), running.map((j) => j.id).sort());
  for (const j of running) assert.equal((await s.waitFor(j.id)).status, 'cancelled');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${waiting.id}`)).body.status, 'delayed', 'a waiting job is not running');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${elsewhere.id}`)).body.status, 'running', 'another queue is left alone');
  // The waiting ones, as before, now also answering which.
  const w = await s.request<Affected>('DELETE', '/v1/queues/bulk/jobs?status=waiting');
  assert.deepEqual([w.body.cancelled, w.body.ids], [1, [waiting.id]]);
  await s.request('DELETE', '/v1/queues/other/jobs?status=running');
});

test('DELETE /v1/jobs/:id deletes a finished job (record, output, indexes); 409 for an unfinished one', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'bulk' } });
  const redis = new Redis(s.config.redisUrl);
  t.after(async () => void (await redis.quit()));
  const done = await s.run({ queue: 'bulk', command: 'echo hello' });
  const kept = await s.run({ queue: 'bulk', command: 'echo kept' });
  const waiting = await s.submit({ queue: 'bulk', command: 'true', delayMs: 600_000 });
  const conflict = await s.request<{ error: { code: string } }>('DELETE', `/v1/jobs/${waiting.id}`);
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error.code, 'CONFLICT');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${waiting.id}`)).body.status, 'delayed', 'nothing changed');

  const res = await s.request<Affected>('DELETE', `/v1/jobs/${done.id}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { count: 1, ids: [done.id], idsTruncated: false });
  assert.equal((await s.request('GET', `/v1/jobs/${done.id}`)).status, 404);
  assert.equal((await s.request('GET', `/v1/jobs/${done.id}/logs`)).status, 404);
  assert.deepEqual(await keysOf(redis, `{${s.prefix}}:job:${done.id}*`), [], 'record, log and attempts gone');
  const ids = (await list(s, 'queue=bulk')).map((j) => j.id);
  assert.ok(!ids.includes(done.id) && ids.includes(kept.id), 'gone from the indexes; the other job stays');
  assert.ok(!(await list(s, 'status=succeeded')).some((j) => j.id === done.id));
  assert.equal((await s.request('DELETE', `/v1/jobs/${done.id}`)).status, 404, 'twice: no such job');
  assert.equal((await s.request('DELETE', '/v1/jobs/not-an-id')).status, 400);
  await s.request('POST', `/v1/jobs/${waiting.id}/cancel`);
});

test('DELETE /v1/queues/:name/jobs?status=succeeded&before= deletes old finished records of that status and queue', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'bulk,other' } });
  const old = [await s.run({ queue: 'bulk', command: 'true' }), await s.run({ queue: 'bulk', command: 'true' })];
  const failedOld = await s.run({ queue: 'bulk', command: 'false' });
  const otherOld = await s.run({ queue: 'other', command: 'true' });
  await new Promise((r) => setTimeout(r, 5));
  const cut = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const recent = await s.run({ queue: 'bulk', command: 'true' });

  const bad = await s.request('DELETE', '/v1/queues/bulk/jobs?status=waiting&before=' + cut);
  assert.equal(bad.status, 400, 'before goes with a finished state');
  assert.equal((await s.request('DELETE', '/v1/queues/bulk/jobs?status=succeeded&before=soon')).status, 400);
  assert.equal((await list(s, 'queue=bulk')).length, 4, 'nothing changed');

  const res = await s.request<Affected>('DELETE', `/v1/queues/bulk/jobs?status=succeeded&before=${cut}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.deleted, 2);
  assert.deepEqual([...res.body.ids].sort(), old.map((j) => j.id).sort());
  const left = (await list(s, 'queue=bulk')).map((j) => j.id).sort();
  assert.deepEqual(left, [failedOld.id, recent.id].sort(), 'another status and a newer job stay');
  assert.equal((await s.request('GET', `/v1/jobs/${otherOld.id}`)).status, 200, 'another queue stays');
  // Without before: everything of that status finished until now.
  const all = await s.request<Affected>('DELETE', '/v1/queues/bulk/jobs?status=succeeded');
  assert.deepEqual(all.body.ids, [recent.id]);
});

test('the CLI: queues retry|cancel|clean, cancel --group, schedules kill, jobs with combined filters', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'bulk', RUNNER_CONCURRENCY: '8' } });
  const env = cliEnv(t, s.url, s.tokens.admin);
  const failed = await s.run({ queue: 'bulk', command: 'exit 2', labels: { team: 'a', env: 'prod' } });
  const near = await s.run({ queue: 'bulk', command: 'exit 2', labels: { team: 'a', env: 'dev' } });
  const found = await cli(t, env, 'jobs', '--queue', 'bulk', '--label', 'team=a', '--label', 'env=prod', '--command', 'exit 2', '--json');
  assert.equal(found.code, 0, found.stderr);
  assert.deepEqual((JSON.parse(found.stdout) as JobRecord[]).map((j) => j.id), [failed.id], 'both labels, not the near-miss');
  assert.ok(near.id);

  const retried = await cli(t, env, 'queues', 'retry', 'bulk', '--json');
  assert.equal(retried.code, 0, retried.stderr);
  assert.deepEqual((JSON.parse(retried.stdout) as Affected).ids.sort(), [failed.id, near.id].sort());
  assert.equal((await cli(t, env, 'queues', 'retry', 'bulk', '--since', 'soon')).code, 2, 'a bad time is a usage error');

  const group = (await s.request<JobRecord & { replicaJobs: string[] }>('POST', '/v1/jobs', { queue: 'bulk', command: 'sleep 30', replicas: 2 })).body;
  for (const id of group.replicaJobs) await s.waitFor(id, (j) => j.status === 'running');
  const cancelled = await cli(t, env, 'cancel', '--group', group.replicaJobs[1]!);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.deepEqual(cancelled.stdout.trim().split('\n').sort(), group.replicaJobs.map((id) => `${id} cancelled`).sort());

  await s.request('POST', '/v1/schedules', { name: 'cli-kill', cron: '0 0 1 1 *', job: { queue: 'bulk', command: 'sleep 30' } });
  const fired = (await s.request<JobRecord>('POST', '/v1/schedules/cli-kill/trigger', {})).body;
  await s.waitFor(fired.id, (j) => j.status === 'running');
  const killed = await cli(t, env, 'schedules', 'kill', 'cli-kill');
  assert.equal(killed.code, 0, killed.stderr);
  assert.equal(killed.stdout.trim(), `cancelled ${fired.id}`);

  const running = await s.submit({ queue: 'bulk', command: 'sleep 30' });
  await s.waitFor(running.id, (j) => j.status === 'running');
  const stopped = await cli(t, env, 'queues', 'cancel', 'bulk', '--status', 'running', '--json');
  assert.deepEqual((JSON.parse(stopped.stdout) as Affected).ids, [running.id]);
  for (const id of [...group.replicaJobs, fired.id, running.id]) await s.waitFor(id);

  const cleaned = await cli(t, env, 'queues', 'clean', 'bulk', '--status', 'cancelled', '--json');
  assert.equal(cleaned.code, 0, cleaned.stderr);
  assert.deepEqual((JSON.parse(cleaned.stdout) as Affected).ids.sort(), [...group.replicaJobs, fired.id, running.id].sort());
  assert.equal((await cli(t, env, 'queues', 'clean', 'bulk')).code, 2, '--status is required');
});

test('deletes reach the archive: DELETE /v1/jobs/:id and a bulk clean of jobs Redis already let go', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '1000', RUNNER_QUEUES: 'bulk,other' } });
  const sql = poolThenDrop(t, { url: db, drop });
  const redis = new Redis(s.config.redisUrl);
  t.after(async () => void (await redis.quit()));
  const one = await s.run({ queue: 'bulk', command: 'echo one' });
  const old = [await s.run({ queue: 'bulk', command: 'true' }), await s.run({ queue: 'bulk', command: 'true' })];
  const failed = await s.run({ queue: 'bulk', command: 'false' });
  const elsewhere = await s.run({ queue: 'other', command: 'true' });
  const rows = async (): Promise<string[]> => (await sql.query<{ id: string }>('SELECT id FROM drover_jobs ORDER BY id')).rows.map((r) => r.id);
  const output = async (id: string): Promise<number> => (await sql.query('SELECT 1 FROM drover_job_output WHERE job_id = $1', [id])).rowCount ?? 0;
  await until('archived', async () => (await rows()).length === 5);
  await until('gone from Redis', async () => (await keysOf(redis, `{${s.prefix}}:job:*`)).length === 0);
  assert.equal(await output(one.id), 1, 'control: its output is archived');

  const res = await s.request<Affected>('DELETE', `/v1/jobs/${one.id}`);
  assert.deepEqual(res.body, { count: 1, ids: [one.id], idsTruncated: false });
  assert.equal((await s.request('GET', `/v1/jobs/${one.id}`)).status, 404);
  assert.equal(await output(one.id), 0, 'its archived output too');

  const cleaned = await s.request<Affected>('DELETE', '/v1/queues/bulk/jobs?status=succeeded');
  assert.equal(cleaned.status, 200, JSON.stringify(cleaned.body));
  assert.deepEqual([cleaned.body.deleted, [...cleaned.body.ids].sort()], [2, old.map((j) => j.id).sort()]);
  assert.deepEqual(await rows(), [failed.id, elsewhere.id].sort(), 'another status and another queue stay archived');
});
