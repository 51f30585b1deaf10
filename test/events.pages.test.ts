import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventStore, Keys, createRedis, type DroverEvent } from '@drover/core';
import { REDIS_URL, startStack } from './helpers/stack.js';

type Page = { items: DroverEvent[]; nextCursor: string };

test('GET /v1/events?types=&limit= answers up to limit matching events, reading past others; the cursor goes on where it stopped', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const events = new EventStore(redis, new Keys(s.prefix));
  // 2500 events no filter below wants, then 3 it wants, then 2500 more and one last wanted.
  const noise = async (n: number): Promise<void> => {
    const p = redis.pipeline();
    for (let i = 0; i < n; i++) p.xadd(events.key, '*', 't', 'runner.joined', 'j', '', 'q', '', 'd', '{}');
    await p.exec();
  };
  await noise(2500);
  const wanted = [];
  for (let i = 0; i < 3; i++) wanted.push(await events.append('schedule.fired', { queue: 'default', data: { n: i } }));
  await noise(2500);
  wanted.push(await events.append('schedule.fired', { queue: 'default', data: { n: 3 } }));

  const page = async (after: string, limit: number): Promise<Page> => {
    const r = await s.request<Page>('GET', `/v1/events?types=schedule.*&after=${after}&limit=${limit}`);
    assert.equal(r.status, 200);
    return r.body;
  };
  const first = await page('0-0', 2);
  assert.deepEqual(first.items.map((e) => e.id), wanted.slice(0, 2), 'two matches although 2500 others come first');
  assert.equal(first.nextCursor, wanted[1], 'the cursor is the last event read');
  const second = await page(first.nextCursor, 10);
  assert.deepEqual(second.items.map((e) => e.id), wanted.slice(2), 'the rest, past 2500 more non-matching events');
  const end = await page(second.nextCursor, 10);
  assert.deepEqual(end.items, []);
  assert.equal(end.nextCursor, second.nextCursor, 'at the end the cursor stays');

  // The control: without a filter the first page is the first events, as before.
  const all = await s.request<Page>('GET', '/v1/events?after=0-0&limit=5');
  assert.deepEqual(all.body.items.map((e) => e.type), Array(5).fill('runner.joined'));
});

test('GET /v1/events: a filter that matches nothing reads a bounded number of events and answers its cursor', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const key = new EventStore(redis, new Keys(s.prefix)).key;
  const p = redis.pipeline();
  for (let i = 0; i < 25_000; i++) p.xadd(key, '*', 't', 'runner.joined', 'j', '', 'q', '', 'd', '{}');
  await p.exec();
  const ids = (await redis.xrange(key, '-', '+')).map(([id]) => id);
  const r = await s.request<Page>('GET', '/v1/events?types=job.failed&after=0-0&limit=10');
  assert.deepEqual(r.body.items, []);
  assert.equal(r.body.nextCursor, ids[20_000 - 1], 'stopped after 20000 events read');
  const next = await s.request<Page>('GET', `/v1/events?types=job.failed&after=${r.body.nextCursor}&limit=10`);
  assert.deepEqual(next.body.items, []);
  assert.equal(next.body.nextCursor, ids[ids.length - 1], 'and the next page reads the rest');
});
