import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { createLogger } from '@drover/core';
import { Runner } from '@drover/runner';
import { startStack, type Stack } from './helpers/stack.js';

interface Qs<T = unknown> {
  ret: boolean;
  message: string;
  data?: T;
  detail?: string;
}
type Info = Record<string, unknown> & { name: string; state: boolean; lastState: number; nextRun: number; timeout: number; recover: string };

/** As qschedule's clients call it: JSON bodies with the token inside, GETs with ?token=, no Authorization header. */
async function qs<T = unknown>(s: Stack, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<{ status: number; body: Qs<T> }> {
  const res = await fetch(`${s.url}${path}`, {
    method,
    ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Qs<T> };
}

async function schedule(s: Stack, name: string, job: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await s.request('POST', '/v1/schedules', { name, cron: '30 9 * * *', job, enabled: false, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

const enabled = async (s: Stack, name: string): Promise<boolean> => (await s.request<{ enabled: boolean }>('GET', `/v1/schedules/${name}`)).body.enabled;

test("qschedule's documented requests in order: on, off, job info, run now with param", async (t) => {
  const s = await startStack(t);
  const token = s.tokens.submit;
  await schedule(s, 'qschedule.demo.job1', { command: 'echo "params=$QSCHEDULE_PARAMS day=$day"', onLost: 'discard', alertAfterMs: 60_000 }, { description: '发送即将过期短信', alertAfterFailures: 1 });
  await schedule(s, 'qschedule.demo.job2', { command: 'true' });

  // 启用job接口
  const on = await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['qschedule.demo.job1', 'qschedule.demo.job2'], token });
  assert.deepEqual(on, { status: 200, body: { ret: true, message: '操作成功' } });
  assert.equal(await enabled(s, 'qschedule.demo.job1'), true);
  assert.equal(await enabled(s, 'qschedule.demo.job2'), true);

  // 禁用job接口
  const off = await qs(s, 'POST', '/api/jobs/off.do', { jobs: ['qschedule.demo.job2'], token });
  assert.deepEqual(off.body, { ret: true, message: '操作成功' });
  assert.equal(await enabled(s, 'qschedule.demo.job2'), false);
  assert.equal(await enabled(s, 'qschedule.demo.job1'), true, 'only the named job');

  // 查询job信息接口: never ran yet
  const before = await qs<Info>(s, 'GET', `/api/jobs/qschedule.demo.job1.do?token=${token}`);
  assert.equal(before.status, 200);
  assert.equal(before.body.ret, true);
  const info = before.body.data!;
  assert.equal(info.name, 'qschedule.demo.job1');
  assert.equal(info.desc, '发送即将过期短信');
  assert.equal(info.cron, '30 9 * * *');
  assert.equal(info.state, true);
  assert.equal(info.recover, 'discard');
  assert.equal(info.timeout, 60_000, 'timeout is the alert threshold (alertAfterMs)');
  assert.equal(info.lastState, 0, 'init: never ran');
  assert.equal(info.consecutiveFailTimesAlertThreshold, 1);
  assert.ok(info.nextRun > Date.now(), 'the next fire, epoch ms');
  assert.equal((await qs<Info>(s, 'GET', `/api/jobs/qschedule.demo.job2.do?token=${token}`)).body.data!.nextRun, 0, 'a disabled job has no next run');

  // 立即执行任务接口, with parameters
  const run = await qs(s, 'POST', '/api/tasks.do', { job: 'qschedule.demo.job1', token, param: { day: '2014-06-12', n: 3 } });
  assert.equal(run.status, 200);
  assert.equal(run.body.ret, true);
  const taskId = run.body.message;
  const done = await s.waitFor(taskId);
  assert.equal(done.status, 'succeeded');
  const lines = (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${taskId}/logs`)).body.items.map((l) => l.line);
  assert.deepEqual(lines, ['params={"day":"2014-06-12","n":3} day=2014-06-12']);
  assert.equal(done.schedule, 'qschedule.demo.job1', 'a run of the schedule');

  const after = (await qs<Info>(s, 'GET', `/api/jobs/qschedule.demo.job1.do?token=${token}`)).body.data!;
  assert.equal(after.lastState, 300, 'done');
  assert.ok(Number(after.lastRun) >= Date.parse(done.startedAt!) - 1 && Number(after.lastRun) > 0);
  assert.equal(after.lastDuration, (await s.request<{ lastDurationMs: number }>('GET', '/v1/schedules/qschedule.demo.job1')).body.lastDurationMs);

  const failing = await qs(s, 'POST', '/api/tasks.do', { job: 'qschedule.demo.job2', token });
  await s.request('PUT', '/v1/schedules/qschedule.demo.job2', { job: { command: 'exit 4' } });
  await s.waitFor(failing.body.message);
  const failed = await qs(s, 'POST', '/api/tasks.do', { job: 'qschedule.demo.job2', token });
  assert.equal((await s.waitFor(failed.body.message)).status, 'failed');
  assert.equal((await qs<Info>(s, 'GET', `/api/jobs/qschedule.demo.job2.do?token=${token}`)).body.data!.lastState, -100, 'failed');
});

test('qschedule: its error messages, all or none, and nothing changes on a refusal', async (t) => {
  const s = await startStack(t);
  const token = s.tokens.submit;
  await schedule(s, 'a.job', { command: 'true' });

  assert.deepEqual((await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['a.job'] })).body.message, '授权失败', 'no token');
  const wrong = await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['a.job'], token: randomBytes(24).toString('base64url') });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.ret, false);
  assert.equal(wrong.body.message, '授权失败');
  assert.equal((await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['a.job'], token: s.tokens.read })).body.message, '授权失败', 'a read token may not enable');
  assert.equal(await enabled(s, 'a.job'), false);

  for (const body of [{ token }, { jobs: [], token }, { jobs: 'a.job', token }, { jobs: [3], token }]) {
    const r = await qs(s, 'POST', '/api/jobs/on.do', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.message, '参数错误');
    assert.ok(r.body.detail, 'and what exactly, in English');
  }
  const broken = await fetch(`${s.url}/api/jobs/on.do`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jobs": [' });
  assert.equal(broken.status, 400);
  assert.equal(((await broken.json()) as Qs).message, '参数错误', 'a body that is not JSON is bad input too');
  assert.equal((await qs(s, 'GET', `/api/jobs/.do?token=${token}`)).body.message, 'job不存在', 'no name at all');
  const partly = await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['a.job', 'no.such.job'], token });
  assert.equal(partly.status, 404);
  assert.equal(partly.body.message, 'job不存在');
  assert.equal(await enabled(s, 'a.job'), false, 'all or none');

  assert.equal((await qs(s, 'GET', `/api/jobs/no.such.job.do?token=${token}`)).body.message, 'job不存在');
  assert.equal((await qs(s, 'GET', `/api/jobs/a.job?token=${token}`)).status, 404, 'qschedule paths end in .do');
  assert.equal((await qs(s, 'POST', '/api/tasks.do', { token })).body.message, '参数错误');
  assert.equal((await qs(s, 'POST', '/api/tasks.do', { job: 'a.job', param: 'x', token })).body.message, '参数错误');
  assert.equal((await qs(s, 'POST', '/api/tasks.do', { job: 'no.such.job', token })).body.message, 'job不存在');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs?queue=default')).body.items, [], 'no run was made');

  // The bearer header works as well, and wins over a wrong body token.
  const res = await fetch(`${s.url}/api/jobs/on.do`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jobs: ['a.job'], token: 'wrong' }),
  });
  assert.equal(res.status, 200);
  assert.equal(await enabled(s, 'a.job'), true);
});

test('qschedule: a token restricted to other queues sees no job of this one, in every route', async (t) => {
  const s = await startStack(t);
  await schedule(s, 'billing.close', { queue: 'billing', command: 'true' });
  const narrow = randomBytes(24).toString('base64url');
  s.registry.add(narrow, { name: 'reports-only', scope: 'submit', queues: ['reports'] });

  assert.equal((await qs(s, 'GET', `/api/jobs/billing.close.do?token=${narrow}`)).body.message, 'job不存在');
  assert.equal((await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['billing.close'], token: narrow })).body.message, 'job不存在');
  assert.equal(await enabled(s, 'billing.close'), false);
  assert.equal((await qs(s, 'POST', '/api/tasks.do', { job: 'billing.close', token: narrow })).body.message, 'job不存在');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs?queue=billing')).body.items, []);
  // The control: the same calls with an unrestricted token work.
  assert.equal((await qs(s, 'POST', '/api/jobs/on.do', { jobs: ['billing.close'], token: s.tokens.submit })).body.ret, true);
});

/** Runner B's made-up host: two runners of one process must look like two machines. */
const HOST_B = { name: 'Host-B.example', addresses: ['192.0.2.77'] };
type Worker = { address: string; hostname: string; canSchedule: boolean; jobName: string; online: boolean };

test('qschedule workers: take a machine offline for one job, list them, refuse all offline; check which jobs run on a host', async (t) => {
  const s = await startStack(t);
  const token = s.tokens.submit;
  const b = new Runner({ config: { ...s.config, runner: { ...s.config.runner, id: `b-${s.prefix.slice(5, 13)}` } }, logger: createLogger('silent', 'test'), host: HOST_B });
  t.after(() => b.close());
  await b.start();
  const a = s.runner!;
  const hostA = hostname().toLowerCase();
  await schedule(s, 'q.job', { command: 'echo ran' });
  await schedule(s, 'q.other', { command: 'true' });

  const workers = async (): Promise<Worker[]> => {
    const r = await qs<Worker[]>(s, 'GET', `/api/workers/q.job.do?token=${token}`);
    assert.equal(r.body.ret, true, JSON.stringify(r.body));
    return r.body.data!.sort((x, y) => x.hostname.localeCompare(y.hostname));
  };
  const byHost = async (): Promise<Record<string, boolean>> => Object.fromEntries((await workers()).map((w) => [w.hostname.toLowerCase(), w.canSchedule]));
  assert.deepEqual(await byHost(), { [hostA]: true, 'host-b.example': true });
  assert.equal((await workers()).find((w) => w.hostname === 'Host-B.example')!.address, '192.0.2.77');

  // Worker上下线接口: B offline for q.job, the map sent as a JSON string as qschedule's clients do.
  const off = await qs(s, 'POST', '/api/workers/state.do', { jobName: 'q.job', workers: '{"192.0.2.77:20010":false}', token });
  assert.deepEqual(off.body, { ret: true, message: '操作成功' });
  assert.deepEqual(await byHost(), { [hostA]: true, 'host-b.example': false });
  const runs = [];
  for (let i = 0; i < 6; i++) runs.push((await qs(s, 'POST', '/api/tasks.do', { job: 'q.job', token })).body.message);
  for (const id of runs) assert.equal((await s.waitFor(id)).runnerId, a.id, 'never on the machine taken offline');

  // Taking the last one offline too is refused, and changes nothing.
  const all = await qs(s, 'POST', '/api/workers/state.do', { jobName: 'q.job', workers: { [`${hostA}:20010`]: false }, token });
  assert.equal(all.status, 409);
  assert.equal(all.body.message, '所有机器不能全部下线');
  assert.deepEqual(await byHost(), { [hostA]: true, 'host-b.example': false });

  // The control: swapped in one call, the job runs on B only.
  assert.equal((await qs(s, 'POST', '/api/workers/state.do', { jobName: 'q.job', workers: { [`${hostA}:20010`]: false, '192.0.2.77:20010': true }, token })).body.ret, true);
  assert.deepEqual(await byHost(), { [hostA]: false, 'host-b.example': true });
  const onB = (await qs(s, 'POST', '/api/tasks.do', { job: 'q.job', token })).body.message;
  assert.equal((await s.waitFor(onB)).runnerId, b.id);
  const other = (await qs(s, 'POST', '/api/tasks.do', { job: 'q.other', token })).body.message;
  assert.equal((await s.waitFor(other)).status, 'succeeded', 'another job keeps every worker');

  for (const w of ['nope', '{}', '{"a:1":"yes"}', 5, []]) {
    const r = await qs(s, 'POST', '/api/workers/state.do', { jobName: 'q.job', workers: w, token });
    assert.equal(r.status, 400, JSON.stringify(w));
    assert.equal(r.body.message, 'workers json 格式非法');
  }
  assert.equal((await qs(s, 'POST', '/api/workers/state.do', { jobName: 'no.job', workers: { 'x:1': false }, token })).body.message, 'job不存在');
  assert.equal((await qs(s, 'POST', '/api/workers/state.do', { jobName: 'q.job', workers: { 'x:1': false }, token: s.tokens.read })).body.message, '授权失败');

  // 检查是否有任务在执行接口: by address, by host name, by its short form; nothing on A.
  await s.request('PUT', '/v1/schedules/q.job', { job: { command: 'sleep 30', constraints: { notHost: [hostA] } } });
  const long = (await qs(s, 'POST', '/api/tasks.do', { job: 'q.job', token })).body.message;
  await s.waitFor(long, (j) => j.status === 'running');
  for (const host of ['192.0.2.77', 'Host-B.example', 'host-b']) {
    const r = await qs<Info[]>(s, 'GET', `/api/check/${host}.do?token=${token}`);
    assert.equal(r.body.ret, true);
    assert.deepEqual(r.body.data!.map((j) => [j.name, j.lastState]), [['q.job', 200]], `check ${host}`);
  }
  assert.deepEqual((await qs<Info[]>(s, 'GET', `/api/check/${hostA}.do?token=${token}`)).body.data, []);
  assert.deepEqual((await qs<Info[]>(s, 'GET', `/api/check/192.0.2.7.do?token=${token}`)).body.data, [], 'an address is matched whole');
  await s.request('POST', `/v1/jobs/${long}/cancel`);
  await s.waitFor(long);
});
