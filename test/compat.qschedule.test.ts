import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
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
