import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { REDIS_URL, startStack, type Stack, keysOf } from './helpers/stack.js';
import { until } from './helpers/until.js';

/**
 * Coyotes' README (seed 004), its requests replayed in its order through Redis and HTTP, with their answers and
 * effects. The README's task `ping -c 40 baidu.com` needs the internet; `sleep 40` stands in for it (a command that
 * runs a while). The stack runs as `drover start` runs it: one runner serving every queue (RUNNER_QUEUES=*).
 */

interface Envelope<T = unknown> {
  status_code: number;
  message: string;
  data: T;
}
type Task = { task_id: string; task_name: string; channel: string; status: string; command: { name: string; args: string[] } };

async function multipart<T>(s: Stack, method: string, path: string, fields?: Record<string, string>): Promise<{ status: number; body: Envelope<T> }> {
  let body: FormData | undefined;
  if (fields) {
    body = new FormData();
    for (const [k, v] of Object.entries(fields)) body.append(k, v);
  }
  const res = await fetch(`${s.url}${path}`, { method, headers: { authorization: `Bearer ${s.tokens.admin}` }, ...(body ? { body } : {}) });
  return { status: res.status, body: (await res.json()) as Envelope<T> };
}

const jobs = async (s: Stack): Promise<JobRecord[]> => (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?limit=1000')).body.items;
const byTask = async (s: Stack, task: string): Promise<JobRecord[]> => (await jobs(s)).filter((j) => j.labels['coyotes.task'] === task);

test("Coyotes' README (seed 004): the list push, the HTTP push, the channel views, a new channel with distinct and worker", async (t) => {
  // The README's key is task:prepare:queue; a test must not use that shared name, so it is a Coyotes -biz-name one.
  const list = `biz-${randomUUID()}:task:prepare:queue`;
  const redis = new Redis(REDIS_URL);
  t.after(async () => {
    await redis.del(list, ...(await keysOf(redis, `{${list}}:*`)));
    await redis.quit();
  });
  // A short drain: the stand-in for ping is cancelled at the end, or stopped with the stack should an assertion fail first.
  const s = await startStack(t, { env: { RUNNER_QUEUES: '*', RUNNER_CONCURRENCY: '5', RUNNER_DRAIN_TIMEOUT_MS: '100', DROVER_COYOTES_LIST: '1', DROVER_COYOTES_LIST_KEY: list } });

  // $redis->lpush('task:prepare:queue', json_encode(['task' => $taskName, 'chan' => $channel, 'ts' => time()]))
  await redis.lpush(list, JSON.stringify({ task: 'echo pushed', chan: 'default', ts: Math.floor(Date.now() / 1000) }));
  const [pushed] = await until('the list task ran', async () => {
    const js = await byTask(s, 'echo pushed');
    return js.length === 1 && js[0]!.status === 'succeeded' ? js : undefined;
  });
  assert.deepEqual((await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${pushed!.id}/logs`)).body.items.map((l) => l.line), ['pushed']);

  // POST /channels/default, multipart field task: {"status_code":200,"message":"ok","data":{"task_name":...,"result":true}}
  const push = await multipart<{ task_id: string; task_name: string; result: boolean }>(s, 'POST', '/channels/default', { task: 'sleep 40' });
  assert.equal(push.status, 200);
  assert.deepEqual({ ...push.body, data: { task_name: push.body.data.task_name, result: push.body.data.result } }, { status_code: 200, message: 'ok', data: { task_name: 'sleep 40', result: true } });
  await s.waitFor(push.body.data.task_id, (j) => j.status === 'running');

  // GET /channels: every channel with its tasks and count; the README's shows default's task running.
  const all = await multipart<Record<string, { tasks: Task[]; count: number }>>(s, 'GET', '/channels');
  assert.deepEqual([all.body.status_code, all.body.message], [200, 'ok']);
  assert.deepEqual(Object.keys(all.body.data), ['biz', 'cron', 'default', 'delayed']);
  assert.deepEqual(all.body.data.default!.tasks.map((x) => [x.task_name, x.channel, x.status]), [['sleep 40', 'default', 'running']]);
  assert.equal(all.body.data.default!.count, 1);
  assert.deepEqual(all.body.data.biz, { tasks: [], count: 0 });

  // GET /channels/{channel_name}: {"tasks": [], "count": 0}
  assert.deepEqual((await multipart(s, 'GET', '/channels/cron')).body, { status_code: 200, message: 'ok', data: { tasks: [], count: 0 } });

  // POST /channels/{channel_name} task=date: {"task_name": "date", "result": true}
  const date = await multipart<{ task_id: string; task_name: string; result: boolean }>(s, 'POST', '/channels/default', { task: 'date' });
  assert.deepEqual([date.body.data.task_name, date.body.data.result], ['date', true]);
  const ran = await s.waitFor(date.body.data.task_id);
  assert.deepEqual([ran.status, ran.argv], ['succeeded', ['date']]);

  // POST /channels name, distinct, worker: data null. The channel runs its tasks with no more setup, `worker` at a time.
  const created = await multipart(s, 'POST', '/channels', { name: 'test', distinct: 'true', worker: '2' });
  assert.deepEqual(created.body, { status_code: 200, message: 'ok', data: null });
  const names = ['sleep 1', 'sleep 1.1', 'sleep 1.2'];
  const ids: string[] = [];
  for (const task of names) ids.push((await multipart<{ task_id: string; result: boolean }>(s, 'POST', '/channels/test', { task })).body.data.task_id);
  const dup = await multipart<{ task_id: string; result: boolean }>(s, 'POST', '/channels/test', { task: 'sleep 1' });
  assert.deepEqual([dup.body.data.result, dup.body.data.task_id], [false, ids[0]], 'distinct: the same command is not queued again');
  const done = await Promise.all(ids.map((id) => s.waitFor(id)));
  assert.deepEqual(done.map((j) => j.status), ['succeeded', 'succeeded', 'succeeded']);
  // Two workers: the third task started only once one of the first two ended.
  const [a, b, c] = done.map((j) => ({ start: Date.parse(j.startedAt!), end: Date.parse(j.finishedAt!) }));
  const third = [a!, b!, c!].sort((x, y) => x.start - y.start)[2]!;
  const before = [a!, b!, c!].filter((x) => x !== third);
  assert.ok(third.start >= Math.min(...before.map((x) => x.end)), 'at most two of the channel ran at once');
  const channel = await multipart<{ tasks: Task[]; count: number }>(s, 'GET', '/channels/test');
  assert.deepEqual(channel.body.data, { tasks: [], count: 0 });
  assert.deepEqual(Object.keys((await multipart<Record<string, unknown>>(s, 'GET', '/channels')).body.data), ['biz', 'cron', 'default', 'delayed', 'test']);
  assert.equal((await s.request('POST', `/v1/jobs/${push.body.data.task_id}/cancel`)).status, 200);
});
