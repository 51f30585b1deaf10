import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { loadConfig, type JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { freshDatabase } from './helpers/postgres.js';
import { REDIS_URL, startStack, type Stack, keysOf } from './helpers/stack.js';
import { until } from './helpers/until.js';

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
    ['POST', '/channels/test/tasks', { task: 'true', id: 'not an id' }, 400, /id must be 1-128 letters/],
    ['GET', '/channels/default/failed-tasks/nothing', undefined, 404, /no failed task nothing in channel default/],
    ['DELETE', '/channels/default/failed-tasks/nothing', undefined, 404, /no failed task nothing/],
    ['DELETE', '/delay-tasks/nothing', undefined, 404, /no delayed task nothing/],
    ['PUT', '/channels/default', { task: 'true' }, 404, /^no route PUT \/channels\/default$/],
    ['DELETE', '/channels/default/tasks/x', undefined, 404, /no route DELETE/],
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
  for (const [method, path] of [['POST', '/channels/default'], ['DELETE', '/channels/default/failed-tasks/x'], ['DELETE', '/delay-tasks/x']] as const) {
    const anon = await form(s, method, path, method === 'POST' ? { task: 'true' } : undefined, 'multipart', null);
    assert.deepEqual([anon.status, anon.body.status_code, anon.body.data], [401, 401, null], `${method} ${path}: Coyotes' envelope`);
  }
});

test('Coyotes Redis-list ingestion: the key is DROVER_COYOTES_LIST_KEY exactly (no prefix, no hash tag); unreadable items are set aside', async (t) => {
  // What a Coyotes started with -biz-name reads; unique per test, as the list lives outside the test's prefix.
  const biz = `biz-${randomUUID()}`;
  const list = `${biz}:task:prepare:queue`;
  const redis = new Redis(REDIS_URL);
  t.after(async () => {
    // After the stack stopped (hooks run in order): the list and the lists it moves items through share its slot.
    const keys = [list, ...(await keysOf(redis, `{${list}}:*`))];
    await redis.del(...keys);
    await redis.quit();
  });
  const s = await startStack(t, { env: { DROVER_COYOTES_LIST: '1', DROVER_COYOTES_LIST_KEY: list } });
  assert.equal(s.config.compat.coyotesListKey, list);
  const legacy = `{${s.prefix}}:task:prepare:queue`;
  await redis.lpush(legacy, JSON.stringify({ task: 'echo not-read', chan: 'default' }));
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
  assert.deepEqual(await redis.lrange(`{${list}}:rejected`, 0, -1), ['not json']);
  assert.equal(await redis.llen(list), 0);
  assert.deepEqual(await redis.lrange(legacy, 0, -1), [JSON.stringify({ task: 'echo not-read', chan: 'default' })], 'the old prefixed list is not read');
});

test('Coyotes list key: defaults to task:prepare:queue, as Coyotes clients push; a key with spaces is a config error', () => {
  assert.equal(loadConfig({}).compat.coyotesListKey, 'task:prepare:queue');
  assert.equal(loadConfig({ DROVER_COYOTES_LIST_KEY: ':task:prepare:queue' }).compat.coyotesListKey, ':task:prepare:queue');
  assert.throws(() => loadConfig({ DROVER_COYOTES_LIST_KEY: 'task prepare' }), /DROVER_COYOTES_LIST_KEY must be 1-256 printable characters/);
});

type Task = { task_id: string; task_name: string; status: string; failed_at: string; execute_at: string; channel: string };

test("Coyotes failed tasks (by the client's id: list, one, retry under the same id, delete) and delayed tasks (list, one, cancel)", async (t) => {
  const s = await startStack(t);
  const failing = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'false', id: 'myid' });
  assert.equal(failing.body.data.task_id, 'myid', "the client's id is the task id");
  const [job] = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items;
  assert.equal((await s.waitFor(job!.id)).status, 'failed');
  const list = await form<Record<string, Task>>(s, 'GET', '/channels/default/failed-tasks');
  assert.deepEqual(Object.keys(list.body.data), ['myid'], 'failed tasks by task id, as Coyotes lists them');
  assert.deepEqual([list.body.data.myid!.status, list.body.data.myid!.task_name, Date.parse(list.body.data.myid!.failed_at) > 0], ['failed', 'false', true]);
  assert.equal(list.body.data.myid!.execute_at, '0001-01-01T00:00:00Z', "Go's zero time, as Coyotes shows an unset time");
  const one = await form<Task>(s, 'GET', '/channels/default/failed-tasks/myid');
  assert.deepEqual([one.status, one.body.data.task_id], [200, 'myid']);
  assert.equal((await form(s, 'GET', '/channels/other/failed-tasks/myid')).status, 404, "another channel's");
  const retry = await form<{ task_id: string; result: boolean }>(s, 'POST', '/channels/default/failed-tasks/myid');
  assert.deepEqual(retry.body.data, { task_id: 'myid', task_name: 'false', result: true });
  assert.deepEqual((await form<Record<string, Task>>(s, 'GET', '/channels/default/failed-tasks')).body.data, {}, 'off the failed list while it runs again');
  const rerun = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items.find((j) => j.id !== job!.id)!;
  const again = await s.waitFor(rerun.id);
  assert.deepEqual([again.status, again.argv, again.labels['coyotes.retryOf'], again.labels['coyotes.id']], ['failed', ['false'], job!.id, 'myid']);
  const back = await form<Record<string, Task>>(s, 'GET', '/channels/default/failed-tasks');
  assert.deepEqual(Object.keys(back.body.data), ['myid'], 'failed again: back on the list under its id');
  const removed = await form<Task>(s, 'DELETE', '/channels/default/failed-tasks/myid');
  assert.deepEqual([removed.status, removed.body.data.task_id], [200, 'myid'], 'DELETE answers the task it took off');
  assert.equal((await form(s, 'GET', '/channels/default/failed-tasks/myid')).status, 404);
  assert.deepEqual((await form<Record<string, Task>>(s, 'GET', '/channels/default/failed-tasks')).body.data, {});
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${rerun.id}`)).body.status, 'failed', 'the job record stays, as history');
  // Without a client id the task id is the job id.
  const ok = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'true' });
  assert.equal((await s.waitFor(ok.body.data.task_id)).status, 'succeeded');
  assert.equal((await form(s, 'GET', `/channels/default/failed-tasks/${ok.body.data.task_id}`)).status, 404, 'a succeeded task is not a failed one');

  const later = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'true', delay: '60', id: 'later' });
  assert.equal(later.body.data.task_id, 'later');
  const delayed = await form<Record<string, Task>>(s, 'GET', '/delay-tasks');
  assert.deepEqual(Object.keys(delayed.body.data), ['later']);
  assert.ok(Date.parse(delayed.body.data.later!.execute_at) > Date.now());
  assert.equal((await form(s, 'GET', '/delay-tasks/later')).status, 200);
  const cancelled = await form<Task>(s, 'DELETE', '/delay-tasks/later');
  assert.deepEqual([cancelled.status, cancelled.body.data.task_id], [200, 'later']);
  const gone = await form(s, 'GET', '/delay-tasks/later');
  assert.deepEqual([gone.status, gone.body.message], [404, 'no delayed task later']);
  const d = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items.find((j) => j.labels['coyotes.id'] === 'later')!;
  assert.equal(d.status, 'cancelled');
  const byJobId = await form(s, 'GET', `/delay-tasks/${d.id}`);
  assert.deepEqual([byJobId.status, byJobId.body.message], [404, `no delayed task ${d.id}: it is cancelled now`]);

  // A client id may repeat in queues a token cannot see: a restricted token finds its own, the rest do not exist for it.
  const restricted = randomBytes(24).toString('base64url');
  s.registry.add(restricted, { name: 'mine-only', scope: 'submit', queues: ['mine'] });
  await form(s, 'POST', '/channels/mine/tasks', { task: 'true', delay: '60', id: 'same' }, 'multipart', restricted);
  await form(s, 'POST', '/channels/other/tasks', { task: 'true', delay: '60', id: 'same' });
  assert.equal((await form<Task>(s, 'GET', '/delay-tasks/same')).body.data.channel, 'other', 'the newest');
  assert.equal((await form<Task>(s, 'GET', '/delay-tasks/same', undefined, 'multipart', restricted)).body.data.channel, 'mine');
  assert.deepEqual(Object.values((await form<Record<string, Task>>(s, 'GET', '/delay-tasks', undefined, 'multipart', restricted)).body.data).map((x) => x.channel), ['mine']);
  await form(s, 'POST', '/channels/other/tasks', { task: 'true', delay: '60', id: 'theirs' });
  const hidden = await form(s, 'GET', '/delay-tasks/theirs', undefined, 'multipart', restricted);
  const ghost = await form(s, 'GET', '/delay-tasks/nobody', undefined, 'multipart', restricted);
  assert.deepEqual([hidden.status, hidden.body.message.replace('theirs', 'X')], [ghost.status, ghost.body.message.replace('nobody', 'X')], 'no existence oracle');
  assert.equal((await form(s, 'DELETE', '/delay-tasks/same', undefined, 'multipart', restricted)).status, 200);
  assert.equal((await form<Task>(s, 'GET', '/delay-tasks/same')).body.data.channel, 'other', "the other queue's task is untouched");
});

test('Coyotes failed tasks are read through to the archive once Redis let them go; they can be retried from there', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '1000' } });
  t.after(drop);
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  await form(s, 'POST', '/channels/default/tasks', { task: 'false', id: 'old-1' });
  const plain = await form<{ task_id: string }>(s, 'POST', '/channels/default/tasks', { task: 'ls /no-such-dir' });
  const jobs = await until('both failed', async () => {
    const js = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items;
    return js.length === 2 && js.every((j) => j.status === 'failed') ? js : undefined;
  });
  await until('gone from Redis', async () => (await redis.exists(...jobs.map((j) => `{${s.prefix}}:job:${j.id}`))) === 0, 30_000);
  const list = await form<Record<string, Task>>(s, 'GET', '/channels/default/failed-tasks');
  assert.deepEqual(Object.keys(list.body.data).sort(), ['old-1', plain.body.data.task_id].sort());
  assert.equal((await form<Task>(s, 'GET', '/channels/default/failed-tasks/old-1')).body.data.task_name, 'false');
  assert.equal((await form<Task>(s, 'GET', `/channels/default/failed-tasks/${plain.body.data.task_id}`)).status, 200);
  const retry = await form<{ task_id: string; result: boolean }>(s, 'POST', '/channels/default/failed-tasks/old-1');
  assert.deepEqual(retry.body.data, { task_id: 'old-1', task_name: 'false', result: true });
  const rerun = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items.find((j) => j.labels['coyotes.retryOf'])!;
  assert.deepEqual([(await s.waitFor(rerun.id)).status, rerun.argv], ['failed', ['false']]);
  assert.equal((await form(s, 'DELETE', `/channels/default/failed-tasks/${plain.body.data.task_id}`)).status, 200);
  const left = await form<Record<string, Task>>(s, 'GET', '/channels/default/failed-tasks');
  assert.deepEqual(Object.keys(left.body.data), ['old-1'], 'the retried one failed again; the deleted one is off the list');
  assert.equal(left.body.data['old-1']!.failed_at, (await s.request<JobRecord>('GET', `/v1/jobs/${rerun.id}`)).body.finishedAt);
});
