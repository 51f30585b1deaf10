import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { freshDatabase } from './helpers/postgres.js';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface ProcList {
  code: number;
  msg: string;
  data: { running: { command: string; pid: number; alias: string }[]; tasks: Record<string, Record<string, unknown>> };
}

/** The seed's curl commands: `curl -XPOST http://127.1:8606/proc -d '{...}'` sends the JSON as a form body. */
async function curl(s: Stack, method: string, path: string, json?: unknown, token: string | null = s.tokens.admin): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(json !== undefined ? { body: typeof json === 'string' ? json : JSON.stringify(json) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function jobsNamed(s: Stack, name: string): Promise<JobRecord[]> {
  const all = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?limit=1000')).body.items;
  return all.filter((j) => j.name === name).sort((a, b) => a.id.localeCompare(b.id));
}


const started = (j: JobRecord): number => Date.parse(j.startedAt!);
const finished = (j: JobRecord): number => Date.parse(j.finishedAt!);

// The seed's own request sequence is replayed in compat.meproc-seed.test.ts.

test('Meproc restart (PUT) is one step for waiting tasks: they wait for the new copies, which start once the old ones stopped', async (t) => {
  const s = await startStack(t, { env: { RUNNER_CONCURRENCY: '10' } });
  assert.equal((await curl(s, 'POST', '/proc', { name: 'a', cmd: 'sleep 1', type: 'once', replica: 2 })).status, 200);
  const first = await until('a running', async () => {
    const jobs = await jobsNamed(s, 'a');
    return jobs.length === 2 && jobs.every((j) => j.status === 'running') ? jobs : undefined;
  });
  assert.equal((await curl(s, 'POST', '/proc', { name: 'b', cmd: 'true', type: 'once', deps: ['a'] })).status, 200);
  assert.deepEqual((await curl(s, 'PUT', '/proc?name=a')).body, { code: 200, msg: 'OK' });
  // The answer comes once the old copies stopped; b was not freed by their end.
  for (const j of first) assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${j.id}`)).body.status, 'cancelled');
  const [b] = await jobsNamed(s, 'b');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${b!.id}`)).body.status, 'waiting', 'b still waits: a was restarted, not stopped');
  const view = ((await curl(s, 'GET', '/proc')).body as unknown as ProcList).data.tasks.b!;
  assert.equal(view.run_flag, true);
  const done = await s.waitFor(b!.id);
  assert.equal(done.status, 'succeeded');
  const old = await Promise.all(first.map((j) => s.waitFor(j.id)));
  const fresh = await Promise.all((await jobsNamed(s, 'a')).slice(2).map((j) => s.waitFor(j.id)));
  assert.deepEqual(fresh.map((j) => [j.replica, j.status]), [[0, 'succeeded'], [1, 'succeeded']]);
  assert.ok(Math.min(...fresh.map(started)) >= Math.max(...old.map(finished)), 'the new copies started after the old ones stopped');
  assert.ok(started(done) >= Math.max(...fresh.map(finished)), 'b started only once the restarted a ended');
  // A DELETE, unlike a restart, lets the waiting task go (Meproc: a dep that does not run does not hold it).
  assert.equal((await curl(s, 'POST', '/proc', { name: 'c', cmd: 'sleep 30', type: 'once' })).status, 200);
  await until('c running', async () => (await jobsNamed(s, 'c'))[0]?.status === 'running');
  assert.equal((await curl(s, 'POST', '/proc', { name: 'd', cmd: 'true', type: 'once', deps: ['c'] })).status, 200);
  assert.equal((await curl(s, 'DELETE', '/proc?name=c')).status, 200);
  const [d] = await jobsNamed(s, 'd');
  assert.equal((await s.waitFor(d!.id)).status, 'succeeded');
  for (const name of ['a', 'b', 'd']) assert.equal((await curl(s, 'DELETE', `/proc?name=${name}`)).status, 200);
});

test('Meproc daemons restart after their interval until DELETE; output per process; replica env', async (t) => {
  const s = await startStack(t);
  const res = await curl(s, 'POST', '/proc', { name: 'beat', cmd: 'echo "beat $DROVER_REPLICA_INDEX"; sleep 0.1', type: 'daemon', replica: 2, interval: 100 });
  assert.equal(res.status, 200);
  const jobs = await until('each replica restarted', async () => {
    const js = await jobsNamed(s, 'beat');
    return js.length === 2 && js.every((j) => j.attempts >= 3) ? js : undefined;
  });
  const output = (await curl(s, 'GET', '/proc/output?name=beat')).body as { data: Record<string, string> };
  assert.deepEqual(Object.keys(output.data).sort(), ['beat:0', 'beat:1']);
  assert.match(Buffer.from(output.data['beat:1']!, 'base64').toString(), /^beat 1\n/);
  // Meproc answers /proc/output whatever the method.
  assert.deepEqual((await curl(s, 'POST', '/proc/output?name=beat')).body.code, 200);
  // last_time is when the processes last started: it moves with every daemon restart (seconds, so wait for one).
  const view = async () => ((await curl(s, 'GET', '/proc')).body as unknown as ProcList).data.tasks.beat!;
  const before = (await view()).last_time as number;
  const moved = await until('last_time moved', async () => {
    const v = await view();
    return (v.last_time as number) > before ? v : undefined;
  }, 10_000);
  const newest = Math.max(...(await jobsNamed(s, 'beat')).map((j) => Math.floor(started(j) / 1000)));
  assert.ok((moved.last_time as number) <= newest && (moved.last_time as number) > (moved.start_time as number), 'a later restart, not the POST');
  assert.equal((await curl(s, 'DELETE', '/proc?name=beat')).status, 200);
  for (const j of jobs) assert.equal((await s.waitFor(j.id)).status, 'cancelled');
});

test('Meproc bad input answers 4xx in its envelope and stores nothing; tokens apply unless DROVER_COMPAT_OPEN', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [unknown, number, RegExp][] = [
    ['', 400, /JSON body is required/],
    ['{"name":', 400, /JSON/],
    [{ cmd: 'true', type: 'once', replica: 1 }, 400, /name required/],
    [{ name: 'x', type: 'once', replica: 1 }, 400, /cmd required/],
    [{ name: 'x', cmd: 'true', replica: 1 }, 400, /type required/],
    [{ type: 'once', replica: 0, deps: 'x' }, 400, /^Invalid JSON field: name, cmd required; replica must be a positive integer up to 64; deps must be a list/],
    [{ name: 'x', cmd: 'true', type: 'once', replica: 0 }, 400, /replica must be a positive integer/],
    [{ name: 'x', cmd: 'true', type: 'once', replica: 65 }, 400, /replica/],
    [{ name: 'x', cmd: 'true', type: 'sometimes', replica: 1 }, 400, /type must be once, daemon or cron/],
    [{ name: 'x', cmd: 'true', type: 'once', replica: 1, cron: '* * * * *' }, 400, /Type of cron job must be 'cron'/],
    [{ name: 'x', cmd: 'true', type: 'cron', replica: 1, cron: 'every day' }, 400, /Invalid cron format/],
    [{ name: 'x', cmd: 'true', type: 'once', replica: 1, user: 'nobody' }, 403, /user "nobody" is not allowed/],
    [{ name: 'x', cmd: 'true', type: 'once', replica: 1, deps: ['x'] }, 400, /cycle: x -> x/],
  ];
  for (const [body, status, msg] of cases) {
    const res = await curl(s, 'POST', '/proc', body);
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(res.body.code, status);
    assert.match(String(res.body.msg), msg);
  }
  // a -> b -> a
  assert.equal((await curl(s, 'POST', '/proc', { name: 'a', cmd: 'true', type: 'once', replica: 1, deps: ['b'] })).status, 200);
  const cyc = await curl(s, 'POST', '/proc', { name: 'b', cmd: 'true', type: 'once', replica: 1, deps: ['a'] });
  assert.deepEqual([cyc.status, cyc.body.msg], [400, 'Invalid JSON field: deps form a cycle: b -> a -> b']);
  const dup = await curl(s, 'POST', '/proc', { name: 'a', cmd: 'true', type: 'once', replica: 1 });
  assert.deepEqual(dup.body, { code: 403, msg: 'Program exists, please stop it at first' });
  assert.deepEqual((await curl(s, 'PUT', '/proc?name=zzz')).body, { code: 403, msg: 'Program not exists, please start it at first' });
  assert.deepEqual((await curl(s, 'DELETE', '/proc')).body, { code: 400, msg: 'name is required' });
  assert.deepEqual(await curl(s, 'PATCH', '/proc'), { status: 405, body: { code: 405, msg: 'Method not allowed' } });
  // Other paths under /proc: 404 with an empty body, as Meproc; the rest of the API keeps its own 404.
  for (const path of ['/proc/list', '/proc/output/x', '/proc/nothing/at/all']) {
    const res = await fetch(`${s.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${s.tokens.admin}` } });
    assert.deepEqual([res.status, await res.text()], [404, ''], path);
  }
  assert.equal((await curl(s, 'GET', '/proc/list', undefined, null)).body.code, 401, 'after the token check, in the envelope');
  assert.deepEqual((await curl(s, 'GET', '/v1/nothing')).body, { error: { code: 'NOT_FOUND', message: 'no route GET /v1/nothing' } });
  const tasks = ((await curl(s, 'GET', '/proc')).body as unknown as ProcList).data.tasks;
  assert.deepEqual(Object.keys(tasks), ['a']);
  const jobs = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items;
  assert.equal(jobs.length, 1, 'only task a made a job');
  // replica is optional (1), as in Meproc.
  assert.equal((await curl(s, 'POST', '/proc', { name: 'one', cmd: 'true', type: 'once' })).status, 200);
  assert.equal(((await curl(s, 'GET', '/proc')).body as unknown as ProcList).data.tasks.one!.replica, 1);
  assert.equal((await jobsNamed(s, 'one')).length, 1);

  const anon = await curl(s, 'GET', '/proc', undefined, null);
  assert.equal(anon.status, 401);
  assert.equal(anon.body.code, 401);
  assert.equal((await curl(s, 'POST', '/proc', { name: 'r', cmd: 'true', type: 'once', replica: 1 }, s.tokens.read)).status, 403);
  const open = await startStack(t, { runner: false, scheduler: false, env: { DROVER_COMPAT_OPEN: '1' } });
  assert.equal((await curl(open, 'GET', '/proc', undefined, null)).status, 200);
  assert.equal((await open.request('GET', '/v1/jobs', undefined, null)).status, 401, 'the rest of the API keeps its tokens');
});

test('Meproc /proc/output and the task view read jobs from the archive once Redis let them go', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '1000' } });
  t.after(drop);
  assert.equal((await curl(s, 'POST', '/proc', { name: 'hello', cmd: 'echo "hi $DROVER_REPLICA_INDEX"', type: 'once', replica: 2 })).status, 200);
  const jobs = await until('both ran', async () => {
    const js = await jobsNamed(s, 'hello');
    return js.length === 2 && js.every((j) => j.status === 'succeeded') ? js : undefined;
  });
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  await until('gone from Redis', async () => (await redis.exists(...jobs.map((j) => `{${s.prefix}}:job:${j.id}`))) === 0, 30_000);
  const output = (await curl(s, 'GET', '/proc/output?name=hello')).body as { data: Record<string, string> };
  assert.deepEqual(
    Object.fromEntries(Object.entries(output.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])),
    { 'hello:0': 'hi 0\n', 'hello:1': 'hi 1\n' },
  );
  const view = ((await curl(s, 'GET', '/proc')).body as unknown as ProcList).data.tasks.hello!;
  assert.equal(view.last_time, Math.max(...jobs.map((j) => Math.floor(started(j) / 1000))), 'from the archived records');
  assert.deepEqual([view.running, view.run_flag], [0, false]);
});
