import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { REDIS_URL, startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';


test('retention: finished jobs, their output and attempts leave Redis after DROVER_RETENTION_FINISHED; unfinished ones stay', async (t) => {
  const s = await startStack(t, { env: { DROVER_RETENTION_FINISHED: '1500' } });
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.quit());
  const done = await Promise.all([1, 2, 3].map((i) => s.run({ command: `echo out${i}; exit ${i - 1}`, retries: i === 3 ? 1 : 0, backoff: { type: 'fixed', delayMs: 10 } })));
  const running = await s.submit({ command: 'sleep 30' });
  await s.waitFor(running.id, (j) => j.status === 'running');
  const delayed = await s.submit({ command: 'true', delayMs: 60_000 });
  assert.equal((await s.request('GET', `/v1/jobs/${done[0]!.id}/logs`)).status, 200);
  await until('finished jobs deleted', async () => (await s.request('GET', `/v1/jobs/${done[2]!.id}`)).status === 404, 15_000, 100);
  for (const j of done) {
    assert.equal((await s.request('GET', `/v1/jobs/${j.id}`)).status, 404);
    assert.deepEqual(await redis.keys(`{${s.prefix}}:job:${j.id}*`), [], 'record, output and attempts are gone');
  }
  const listed = (await s.request<{ items: { id: string }[] }>('GET', '/v1/jobs?limit=100')).body.items.map((j) => j.id).sort();
  assert.deepEqual(listed, [running.id, delayed.id].sort(), 'indexes hold only what is left');
  assert.equal((await s.request<{ status: string }>('GET', `/v1/jobs/${running.id}`)).body.status, 'running');
  await s.request('POST', `/v1/jobs/${running.id}/cancel`);
  await s.request('POST', `/v1/jobs/${delayed.id}/cancel`);
});

test('retention: at most DROVER_RETENTION_MAX_PER_QUEUE finished jobs per queue, the newest kept', async (t) => {
  const s = await startStack(t, { env: { DROVER_RETENTION_MAX_PER_QUEUE: '2', RUNNER_QUEUES: 'default,other' } });
  const jobs = [];
  for (let i = 0; i < 5; i++) jobs.push(await s.run({ command: 'true' }));
  const other = await s.run({ command: 'true', queue: 'other' });
  const left = await until('at most 2 finished jobs left', async () => {
    const ids = (await s.request<{ items: { id: string }[] }>('GET', '/v1/jobs?queue=default')).body.items.map((j) => j.id);
    return ids.length <= 2 && ids;
  }, 15_000, 100);
  assert.deepEqual(left.sort(), [jobs[3]!.id, jobs[4]!.id].sort());
  assert.equal((await s.request('GET', `/v1/jobs/${other.id}`)).status, 200, 'another queue keeps its own');
});
