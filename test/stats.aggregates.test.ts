// The dashboard's rolling aggregates, with an injected clock: events land in the bucket of their stream time,
// reads line buckets up to "now", every bucket expires, each event is counted once across a crash.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { EventStore, Keys, RunnerRegistry, STATS_RESOLUTIONS, StatsStore, createLogger, createRedis, quantile, waitBin, WAIT_BOUNDS_MS, JobStore } from '@drover/core';
import type { Redis } from 'ioredis';
import { StatsAggregator } from '../services/api/src/stats-aggregator.js';
import { REDIS_URL, deletePrefix, testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

const MIN = 60_000;
const log = createLogger('silent', 'test');

interface Fixture {
  redis: Redis;
  keys: Keys;
  events: EventStore;
  stats: StatsStore;
  aggregator: (consumer?: string) => StatsAggregator;
}

async function fixture(t: TestContext): Promise<Fixture> {
  const prefix = testPrefix();
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(async () => {
    await deletePrefix(prefix);
    await redis.quit();
  });
  const keys = new Keys(prefix);
  const jobs = new JobStore(redis, prefix);
  const events = new EventStore(redis, keys);
  const stats = new StatsStore(redis, keys);
  const runners = new RunnerRegistry(redis, keys);
  return { redis, keys, events, stats, aggregator: (consumer = 'c1') => new StatsAggregator({ events, jobs, stats, runners, log, consumer }) };
}

/** Appends an event with a chosen stream time, as the scripts would at that moment. */
async function event(f: Fixture, at: number, type: string, queue: string, jobId: string, seq = 0): Promise<string> {
  return (await f.redis.xadd(f.events.key, `${at}-${seq}`, 't', type, 'j', jobId, 'q', queue, 'd', '{}'))!;
}

// Recent times: the buckets expire relative to the real clock, so the injected one must stay close to it.
const hourStart = (): number => Math.floor(Date.now() / MIN) * MIN - 30 * MIN;

test('histogram bins and quantiles', () => {
  assert.equal(waitBin(0), 0);
  assert.equal(waitBin(10), 0);
  assert.equal(waitBin(11), 1);
  assert.equal(waitBin(3600_001), WAIT_BOUNDS_MS.length);
  assert.equal(quantile([0, 0, 0], 0.5), null);
  // 100 waits in (100, 250]: the median interpolates to the middle of the bin.
  const bins = new Array<number>(WAIT_BOUNDS_MS.length + 1).fill(0);
  bins[waitBin(200)] = 100;
  assert.equal(quantile(bins, 0.5), 175);
  assert.equal(quantile(bins, 1), 250);
  // One slow outlier moves p99 up, not p50.
  bins[waitBin(50_000)] = 2;
  assert.equal(quantile(bins, 0.5), 177);
  assert.ok(quantile(bins, 0.995)! > 30_000);
  // The open top bin answers its lower bound.
  const top = new Array<number>(WAIT_BOUNDS_MS.length + 1).fill(0);
  top[WAIT_BOUNDS_MS.length] = 1;
  assert.equal(quantile(top, 0.5), 3600_000);
});

test('events are counted in the bucket of their time, per queue and outcome, with queue waits; a read ends at the injected now', async (t) => {
  const f = await fixture(t);
  const agg = f.aggregator();
  await agg.start();
  t.after(() => agg.close());
  await agg.close(); // only step() by hand below: no loop, no sampling
  const t0 = hourStart();
  // Job a waited 2 s and failed in minute 0; job b waited 40 s, succeeded in minute 3; one job of queue "other".
  await f.redis.hset(f.keys.job('a'), 'queuedAt', t0 - 2000);
  await f.redis.hset(f.keys.job('b'), 'queuedAt', t0 + 3 * MIN - 40_000);
  await event(f, t0 + 10, 'job.started', 'q1', 'a');
  await event(f, t0 + 20, 'job.failed', 'q1', 'a');
  await event(f, t0 + 30, 'job.retried', 'q1', 'a');
  await event(f, t0 + 3 * MIN, 'job.started', 'q1', 'b');
  await event(f, t0 + 3 * MIN + 5, 'job.succeeded', 'q1', 'b');
  await event(f, t0 + 3 * MIN + 6, 'job.submitted', 'q1', 'c');
  await event(f, t0 + 3 * MIN + 7, 'job.timed_out', 'other', 'd');
  // Events without a queue (runner events) are acknowledged and left out.
  await f.redis.xadd(f.events.key, `${t0 + 3 * MIN + 8}-0`, 't', 'runner.joined', 'j', '', 'q', '', 'd', '{}');
  assert.equal(await agg.step(t0 + 4 * MIN), 8);
  assert.equal(await agg.step(t0 + 4 * MIN), 0, 'acknowledged: nothing is read twice');

  const now = t0 + 5 * MIN + 1;
  const view = await f.stats.read('hour', ['q1', 'other', 'never'], { now, runners: true });
  assert.equal(view.stepMs, 60_000);
  assert.equal(view.times.length, 60);
  assert.equal(view.times.at(-1), t0 + 5 * MIN, 'the last bucket is the one "now" is in');
  const at = (min: number): number => view.times.indexOf(t0 + min * MIN);
  const q1 = view.queues[0]!;
  assert.equal(q1.outcomes.failed[at(0)], 1);
  assert.equal(q1.outcomes.succeeded[at(3)], 1);
  assert.equal(q1.outcomes.succeeded[at(0)], 0);
  assert.equal(q1.retried[at(0)], 1);
  assert.deepEqual([q1.started[at(0)], q1.started[at(3)]], [1, 1]);
  assert.deepEqual(q1.totals, { succeeded: 1, failed: 1, timed_out: 0, cancelled: 0, lost: 0, expired: 0, started: 2, retried: 1 });
  // 2 s falls in (1 s, 2.5 s], 40 s in (30 s, 60 s].
  assert.ok(q1.wait.p50[at(0)]! > 1000 && q1.wait.p50[at(0)]! <= 2500, String(q1.wait.p50[at(0)]));
  assert.ok(q1.wait.p50[at(3)]! > 30_000 && q1.wait.p50[at(3)]! <= 60_000);
  assert.equal(q1.wait.p50[at(1)], null, 'no start, no wait');
  assert.equal(q1.waitOverall.count, 2);
  assert.equal(view.queues[1]!.totals.timed_out, 1);
  assert.equal(view.queues[1]!.totals.succeeded, 0);
  assert.deepEqual(view.queues[2]!.totals, { succeeded: 0, failed: 0, timed_out: 0, cancelled: 0, lost: 0, expired: 0, started: 0, retried: 0 });
  assert.deepEqual(view.runners, []);

  // The day view has the same events in quarter-hour buckets.
  const day = await f.stats.read('day', ['q1'], { now });
  assert.equal(day.times.length, 96);
  assert.equal(day.queues[0]!.totals.succeeded, 1);
  assert.equal(day.queues[0]!.outcomes.failed.reduce((a, b) => a + b), 1);

  // A later "now": the minutes have slid out of the hour view but stay in the day view.
  const later = t0 + 70 * MIN;
  assert.equal((await f.stats.read('hour', ['q1'], { now: later })).queues[0]!.totals.failed, 0);
  assert.equal((await f.stats.read('day', ['q1'], { now: later })).queues[0]!.totals.failed, 1);
});

test('every bucket expires: memory stays bounded by buckets, not by traffic', async (t) => {
  const f = await fixture(t);
  const agg = f.aggregator();
  await agg.start();
  await agg.close();
  const t0 = hourStart();
  for (let i = 0; i < 50; i++) await event(f, t0 + i, 'job.succeeded', 'q1', `j${i}`);
  await agg.step(t0 + MIN);
  const keys = (await f.redis.keys(`${f.keys.base}:stats:q:*`)).sort();
  assert.equal(keys.length, 2, `one hash per resolution: ${keys.join(' ')}`);
  for (const key of keys) {
    const range = key.includes(':hour:') ? 'hour' : 'day';
    const bucket = Number(key.split(':').at(-1));
    assert.equal(await f.redis.pexpiretime(key), bucket + STATS_RESOLUTIONS[range].keepMs, key);
  }
  assert.equal(await f.redis.hget(keys[0]!, 'succeeded'), '50');
});

test('a batch read but not acknowledged (the process died) is counted once when read again; a consumer that left nothing pending is removed', async (t) => {
  const f = await fixture(t);
  const first = f.aggregator('c1');
  await first.start();
  await first.close();
  const t0 = hourStart();
  for (let i = 0; i < 3; i++) await event(f, t0 + i, 'job.succeeded', 'q1', `j${i}`);
  // As if c1 had read them and died before its MULTI: pending, uncounted.
  await f.redis.xreadgroup('GROUP', 'stats', 'c1', 'COUNT', 10, 'STREAMS', f.events.key, '>');
  const read = async (): Promise<number> => (await f.stats.read('hour', ['q1'], { now: t0 + MIN })).queues[0]!.totals.succeeded;
  assert.equal(await read(), 0);
  const restarted = f.aggregator('c1');
  assert.equal(await restarted.step(t0 + MIN), 3, 'its own backlog first');
  assert.equal(await restarted.step(t0 + MIN), 0);
  assert.equal(await read(), 3);
  // Control: without the XACK in the same step the backlog would be read again; it is gone.
  assert.deepEqual(await f.redis.xpending(f.events.key, 'stats'), [0, null, null, null]);
  await restarted.close();
  const consumers = (await f.redis.xinfo('CONSUMERS', f.events.key, 'stats')) as unknown[];
  assert.equal(consumers.length, 0, 'c1 had nothing pending and was removed');
});

test('runner load: one replica samples per slot, the read averages the samples of a bucket', async (t) => {
  const f = await fixture(t);
  const registry = new RunnerRegistry(f.redis, f.keys);
  const now = Date.now();
  // A live runner as its heartbeat leaves it: the registry hash and its heartbeat score.
  await f.redis.hset(f.keys.runner('r1'), { id: 'r1', state: 'running', queues: 'default', concurrency: 4, running: 'x,y', startedAt: now });
  await f.redis.pexpire(f.keys.runner('r1'), 60_000);
  await f.redis.zadd(f.keys.runners, now, 'r1');
  assert.equal((await registry.list()).find((r) => r.id === 'r1')?.running.length, 2, 'the fixture reads as a runner with 2 running');
  const a = f.aggregator('a');
  const b = f.aggregator('b');
  const slot = Math.floor(now / 10_000) * 10_000;
  assert.equal(await a.sample(slot), true);
  assert.equal(await b.sample(slot + 5), false, 'the other replica does not sample the same slot');
  assert.equal(await a.sample(slot + 6), false, 'nor the same replica twice');
  // The next slot: 1 running.
  await f.redis.hset(f.keys.runner('r1'), 'running', 'x');
  assert.equal(await b.sample(slot + 10_000), true);
  const view = await f.stats.read('day', [], { now: slot + 10_000, runners: true });
  const r1 = view.runners!.find((r) => r.id === 'r1')!;
  const i = view.times.length - 1;
  const sameQuarter = Math.floor(slot / 900_000) === Math.floor((slot + 10_000) / 900_000);
  if (sameQuarter) assert.equal(r1.running[i], 1.5, 'mean of 2 and 1');
  assert.equal(r1.slots[i], 4);
  assert.equal(r1.running[0], null, 'not seen then');
  assert.equal((await f.stats.read('hour', [], { now: slot, runners: false })).runners, null);
});

test('real time: a running aggregator counts new events, and makes its group again when the stream was deleted', async (t) => {
  const f = await fixture(t);
  const agg = new StatsAggregator({ events: f.events, jobs: new JobStore(f.redis, f.keys.base.slice(1, -1)), stats: f.stats, runners: new RunnerRegistry(f.redis, f.keys), log, consumer: 'live', pollMs: 50 });
  await agg.start();
  t.after(() => agg.close());
  const total = async (): Promise<number> => (await f.stats.read('hour', ['q1'])).queues[0]!.totals.succeeded;
  await f.events.append('job.succeeded', { jobId: 'a', queue: 'q1' });
  await until('the first event counted', async () => (await total()) === 1, 10_000);
  await f.redis.del(f.events.key);
  const groups = async (): Promise<number> => ((await f.redis.xinfo('GROUPS', f.events.key).catch(() => [])) as unknown[]).length;
  await until('the group made again', async () => (await groups()) === 1, 10_000);
  await f.events.append('job.succeeded', { jobId: 'b', queue: 'q1' });
  await until('counting goes on', async () => (await total()) === 2, 10_000);
});
