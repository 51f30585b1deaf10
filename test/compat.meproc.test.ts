import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';
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

test("Meproc's own curl sequence (seed 001): deps order the starts, DELETE stops, PUT restarts, cron starts at once and every minute", async (t) => {
  const s = await startStack(t, { env: { RUNNER_CONCURRENCY: '10' } });
  const post = async (json: unknown) => {
    const res = await curl(s, 'POST', '/proc', json);
    assert.deepEqual(res, { status: 200, body: { code: 200, msg: 'OK' } });
  };
  await post({ name: 'sleep1', cmd: 'sleep 5', type: 'once', replica: 2 });
  await post({ name: 'sleep2', cmd: 'sleep 5', type: 'once', replica: 2, deps: ['sleep1'] });
  await post({ name: 'sleep3', cmd: 'sleep 5', type: 'once', replica: 2, deps: ['sleep1', 'sleep2'] });

  const list = await until('sleep1:0 and sleep1:1 running', async () => {
    const res = (await curl(s, 'GET', '/proc')).body as unknown as ProcList;
    return res.data.running.length === 2 && res.data.running.every((r) => r.pid > 0) ? res : undefined;
  });
  assert.equal(list.code, 200);
  assert.equal(list.msg, 'OK');
  assert.deepEqual(list.data.running.map((r) => [r.command, r.alias]), [['sleep 5', 'sleep1:0'], ['sleep 5', 'sleep1:1']]);
  for (const r of list.data.running) assert.ok(r.pid > 0);
  assert.deepEqual(Object.keys(list.data.tasks).sort(), ['sleep1', 'sleep2', 'sleep3']);
  const t3 = list.data.tasks.sleep3!;
  assert.deepEqual(
    { name: t3.name, cmd: t3.cmd, type: t3.type, replica: t3.replica, deps: t3.deps, user: t3.user, group: t3.group, running: t3.running },
    { name: 'sleep3', cmd: 'sleep 5', type: 'once', replica: 2, deps: ['sleep1', 'sleep2'], user: null, group: null, running: 0 },
  );
  assert.equal(typeof t3.start_time, 'number');
  assert.equal(typeof t3.last_time, 'number');
  assert.equal(t3.run_flag, true, 'sleep3 waits to run');

  assert.deepEqual((await curl(s, 'DELETE', '/proc?name=sleep1')).body, { code: 200, msg: 'OK' });
  await post({ name: 'sleep1', cmd: 'sleep 5', type: 'once', replica: 2 });
  assert.deepEqual((await curl(s, 'PUT', '/proc?name=sleep1')).body, { code: 200, msg: 'OK' });
  await post({ name: 'sleep4', cmd: 'sleep 5', type: 'cron', cron: '* * * * *', replica: 2 });

  const sleep4 = await until('sleep4 started', async () => {
    const jobs = await jobsNamed(s, 'sleep4');
    return jobs.length === 2 && jobs.every((j) => j.startedAt) ? jobs : undefined;
  });
  assert.deepEqual(sleep4.map((j) => j.replica).sort(), [0, 1]);
  const schedule = (await s.request<{ cron: string; nextRunAt: string; overlap: string }>('GET', '/v1/schedules/meproc.sleep4')).body;
  assert.equal(schedule.cron, '* * * * *');
  assert.equal(new Date(schedule.nextRunAt).getUTCSeconds(), 0, 'then every minute on the minute');
  assert.equal(schedule.overlap, 'skip', 'a cron task does not start while its previous run goes on');

  const sleep3 = await until('sleep3 started', async () => {
    const jobs = await jobsNamed(s, 'sleep3');
    return jobs.length === 2 && jobs.every((j) => j.startedAt) ? jobs : undefined;
  }, 30_000);
  const sleep1 = await jobsNamed(s, 'sleep1');
  const sleep2 = await jobsNamed(s, 'sleep2');
  assert.equal(sleep1.length, 6, 'three generations of sleep1: started, re-posted, restarted');
  const [gen1, gen2, gen3] = [sleep1.slice(0, 2), sleep1.slice(2, 4), sleep1.slice(4, 6)];
  for (const j of [...gen1, ...gen2]) assert.equal(j.status, 'cancelled', 'DELETE and PUT stop the running processes');
  for (const j of gen3) assert.ok(['running', 'succeeded'].includes(j.status));
  // The order of the seed's log: sleep1 starts; sleep2 only once sleep1 stopped; sleep3 only once sleep2 stopped.
  const last = (jobs: JobRecord[], f: (j: JobRecord) => number): number => Math.max(...jobs.map(f));
  const first = (jobs: JobRecord[], f: (j: JobRecord) => number): number => Math.min(...jobs.map(f));
  assert.ok(first(sleep2, started) >= last(gen1, finished), 'sleep2 started after sleep1 stopped');
  for (const j of sleep2) assert.equal(j.status, 'succeeded');
  assert.ok(first(sleep3, started) >= last(sleep2, finished), 'sleep3 started after sleep2 stopped');
  assert.deepEqual(sleep2.map((j) => j.replica), [0, 1]);

  for (const name of ['sleep1', 'sleep3', 'sleep4']) assert.equal((await curl(s, 'DELETE', `/proc?name=${name}`)).status, 200);
  const gone = (await curl(s, 'GET', '/proc')).body as unknown as ProcList;
  assert.deepEqual(Object.keys(gone.data.tasks), ['sleep2']);
  assert.equal((await s.request('GET', '/v1/schedules/meproc.sleep4')).status, 404);
  for (const j of [...sleep3, ...gen3, ...sleep4]) assert.ok(['cancelled', 'succeeded'].includes((await s.waitFor(j.id)).status));
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
    [{ name: 'x', cmd: 'true', type: 'once' }, 400, /replica required/],
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
  assert.equal((await curl(s, 'PATCH', '/proc')).status, 405);
  const tasks = ((await curl(s, 'GET', '/proc')).body as unknown as ProcList).data.tasks;
  assert.deepEqual(Object.keys(tasks), ['a']);
  const jobs = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items;
  assert.equal(jobs.length, 1, 'only task a made a job');

  const anon = await curl(s, 'GET', '/proc', undefined, null);
  assert.equal(anon.status, 401);
  assert.equal(anon.body.code, 401);
  assert.equal((await curl(s, 'POST', '/proc', { name: 'r', cmd: 'true', type: 'once', replica: 1 }, s.tokens.read)).status, 403);
  const open = await startStack(t, { runner: false, scheduler: false, env: { DROVER_COMPAT_OPEN: '1' } });
  assert.equal((await curl(open, 'GET', '/proc', undefined, null)).status, 200);
  assert.equal((await open.request('GET', '/v1/jobs', undefined, null)).status, 401, 'the rest of the API keeps its tokens');
});
