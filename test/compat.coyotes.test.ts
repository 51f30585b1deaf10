import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Envelope<T = unknown> {
  status_code: number;
  message: string;
  data: T;
}

/** Coyotes clients send form fields: multipart (the seed's example) or urlencoded. */
async function form<T = unknown>(s: Stack, method: string, path: string, fields?: Record<string, string | string[]>, mode: 'multipart' | 'urlencoded' = 'multipart', token: string | null = s.tokens.admin) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let body: FormData | string | undefined;
  if (fields && mode === 'multipart') {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) fd.append(k, x);
    body = fd;
  } else if (fields) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
    body = p.toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, body: (await res.json()) as Envelope<T> };
}

async function output(s: Stack, id: string): Promise<string[]> {
  return (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs`)).body.items.map((l) => l.line);
}

test("Coyotes' API: channels with distinct and worker, tasks pushed as form fields, channel status", async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'default,test' } });
  const created = await form(s, 'POST', '/channels', { name: 'test', distinct: 'true', worker: '2' });
  assert.deepEqual(created, { status: 200, body: { status_code: 200, message: 'ok', data: null } });
  const settings = (await s.request<{ settings: { concurrency: number; dedupe: boolean } }>('GET', '/v1/queues/test')).body.settings;
  assert.equal(settings.concurrency, 2);
  assert.equal(settings.dedupe, true);

  const all = await form<Record<string, { tasks: unknown[]; count: number }>>(s, 'GET', '/channels');
  assert.deepEqual(Object.keys(all.body.data).sort(), ['biz', 'cron', 'default', 'delayed', 'test']);
  assert.deepEqual(all.body.data.test, { tasks: [], count: 0 });

  const pushed = await form<{ task_id: string; task_name: string; result: boolean }>(s, 'POST', '/channels/test', { task: 'sleep 2' });
  assert.equal(pushed.status, 200);
  assert.equal(pushed.body.data.task_name, 'sleep 2');
  assert.equal(pushed.body.data.result, true);
  const again = await form<{ task_id: string; result: boolean }>(s, 'POST', '/channels/test', { task: 'sleep 2' }, 'urlencoded');
  assert.equal(again.body.data.result, false, 'distinct: the same command is not queued twice');
  assert.equal(again.body.data.task_id, pushed.body.data.task_id);

  await s.waitFor(pushed.body.data.task_id, (j) => j.status === 'running');
  const status = await form<{ tasks: { task_id: string; task_name: string; channel: string; status: string; command: { name: string; args: string[] } }[]; count: number }>(
    s, 'GET', '/channels/test',
  );
  assert.equal(status.body.data.count, 1);
  const [task] = status.body.data.tasks;
  assert.deepEqual(
    { id: task!.task_id, name: task!.task_name, channel: task!.channel, status: task!.status, command: task!.command },
    { id: pushed.body.data.task_id, name: 'sleep 2', channel: 'test', status: 'running', command: { name: 'sleep', args: ['2'] } },
  );
  const job = await s.waitFor(pushed.body.data.task_id);
  assert.equal(job.status, 'succeeded');
  assert.deepEqual(job.argv, ['sleep', '2'], 'run without a shell, as Coyotes does');

  // The newer /tasks route: command plus repeated args, and a delay in seconds.
  const withArgs = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'say', command: 'echo', args: ['a b', '$HOME'] });
  const done = await s.waitFor(withArgs.body.data.task_id);
  assert.deepEqual(await output(s, done.id), ['a b $HOME']);
  const delayed = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'true', delay: '30' });
  const d = (await s.request<JobRecord>('GET', `/v1/jobs/${delayed.body.data.task_id}`)).body;
  assert.equal(d.status, 'delayed');
  const queued = await form<{ tasks: { status: string; execute_at: string }[] }>(s, 'GET', '/channels/default');
  assert.equal(queued.body.data.tasks[0]!.status, 'queued');
  assert.equal(queued.body.data.tasks[0]!.execute_at, d.runAt);
  const removed = await form<{ cancelled: number }>(s, 'DELETE', '/channels/default');
  assert.equal(removed.body.data.cancelled, 1, "DELETE drops the channel's queued tasks");
});

test('Coyotes bad input: 4xx in its envelope, nothing stored; tokens apply', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [string, string, Record<string, string> | undefined, number, RegExp][] = [
    ['POST', '/channels', {}, 400, /name is required/],
    ['POST', '/channels', { name: 'x', worker: '0' }, 400, /worker must be a positive integer/],
    ['POST', '/channels', { name: 'x', distinct: 'maybe' }, 400, /distinct must be true or false/],
    ['POST', '/channels', { name: 'no spaces' }, 400, /channel name/],
    ['POST', '/channels/test', {}, 400, /task is required/],
    ['POST', '/channels/test/tasks', { task: 'true', delay: 'soon' }, 400, /delay must be whole seconds/],
    ['GET', '/channels/nope', undefined, 404, /no channel nope/],
  ];
  for (const [method, path, fields, status, message] of cases) {
    const res = await form(s, method, path, fields);
    assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(fields)}`);
    assert.equal(res.body.status_code, status);
    assert.match(res.body.message, message);
    assert.equal(res.body.data, null);
  }
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/queues')).body.items, []);
  const anon = await form(s, 'POST', '/channels/default', { task: 'true' }, 'multipart', null);
  assert.equal(anon.status, 401);
  assert.equal(anon.body.status_code, 401);
});

test('Coyotes Redis-list ingestion: tasks pushed to the list run; unreadable ones are set aside', async (t) => {
  const s = await startStack(t, { env: { DROVER_COYOTES_LIST: '1' } });
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.quit());
  const list = `{${s.prefix}}:task:prepare:queue`;
  await redis.lpush(list, JSON.stringify({ task: 'echo from-list', chan: 'default', ts: Math.floor(Date.now() / 1000) }));
  await redis.lpush(list, 'not json');
  await redis.lpush(list, JSON.stringify({ id: 'c-7', task: 'x', command: { name: 'echo', args: ['named'] }, chan: 'default' }));
  const deadline = Date.now() + 20_000;
  let jobs: JobRecord[] = [];
  while (jobs.filter((j) => j.status === 'succeeded').length < 2) {
    assert.ok(Date.now() < deadline, 'the pushed tasks did not run');
    await sleep(50);
    jobs = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items;
  }
  const byTask = Object.fromEntries(await Promise.all(jobs.map(async (j): Promise<[string, string]> => [j.labels['coyotes.task'] ?? '', (await output(s, j.id)).join()])));
  assert.deepEqual(byTask, { 'echo from-list': 'from-list', x: 'named' });
  assert.equal(jobs.find((j) => j.labels['coyotes.task'] === 'x')!.labels['coyotes.id'], 'c-7');
  assert.deepEqual(await redis.lrange(`{${s.prefix}}:task:prepare:rejected`, 0, -1), ['not json']);
  assert.equal(await redis.llen(list), 0);
});

test('Coyotes failed tasks (list, one, retry) and delayed tasks (list, one, cancel)', async (t) => {
  const s = await startStack(t);
  const failing = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'false' });
  assert.equal((await s.waitFor(failing.body.data.task_id)).status, 'failed');
  const list = await form<{ tasks: { task_id: string; status: string; failed_at: string }[]; count: number }>(s, 'GET', '/channels/default/failed-tasks');
  assert.equal(list.body.data.count, 1);
  assert.equal(list.body.data.tasks[0]!.task_id, failing.body.data.task_id);
  assert.equal(list.body.data.tasks[0]!.status, 'failed');
  assert.ok(list.body.data.tasks[0]!.failed_at);
  assert.equal((await form(s, 'GET', `/channels/default/failed-tasks/${failing.body.data.task_id}`)).status, 200);
  const retry = await form<{ task_id: string; result: boolean }>(s, 'POST', `/channels/default/failed-tasks/${failing.body.data.task_id}`);
  assert.equal(retry.body.data.result, true);
  const again = await s.waitFor(retry.body.data.task_id);
  assert.deepEqual([again.status, again.argv, again.labels['coyotes.retryOf']], ['failed', ['false'], failing.body.data.task_id]);
  const ok = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'true' });
  await s.waitFor(ok.body.data.task_id);
  assert.equal((await form(s, 'GET', `/channels/default/failed-tasks/${ok.body.data.task_id}`)).status, 404, 'a succeeded task is not a failed one');

  const later = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'true', delay: '60' });
  const delayed = await form<{ tasks: { task_id: string }[]; count: number }>(s, 'GET', '/delay-tasks');
  assert.deepEqual(delayed.body.data.tasks.map((x) => x.task_id), [later.body.data.task_id]);
  assert.equal((await form(s, 'GET', `/delay-tasks/${later.body.data.task_id}`)).status, 200);
  assert.equal((await form(s, 'DELETE', `/delay-tasks/${later.body.data.task_id}`)).status, 200);
  assert.equal((await s.waitFor(later.body.data.task_id)).status, 'cancelled');
  assert.equal((await form(s, 'GET', `/delay-tasks/${later.body.data.task_id}`)).status, 404);
});
