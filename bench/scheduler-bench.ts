/**
 * Scheduler section of `npm run bench`, against two scheduler processes (as in production):
 *   - N delayed jobs (default 100k) due within one 10 s window: fire lag (queuedAt - runAt) p50/p99, and Redis
 *     memory per delayed job (used_memory before/after creating them, before any is due);
 *   - M cron schedules (default 10k) firing every minute, all at the same second: lag of the last fire and p99.
 * Jobs and schedules are created straight through the store (the API is not what is measured here); they go to
 * queues no runner consumes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  DEFAULT_SPEC_DEFAULTS, JobStore, ScheduleStore, createRedis, newJobId, nextFireAfter, normalizeJobSpec, type NewJob,
} from '@drover/core';

const ROOT = new URL('..', import.meta.url).pathname;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

export interface SchedulerBenchOptions {
  redisUrl: string;
  prefix: string;
  delayed: number;
  schedules: number;
}

async function usedMemory(redis: ReturnType<typeof createRedis>): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
}

function startSchedulers(opts: SchedulerBenchOptions): ChildProcess[] {
  return [0, 1].map(() =>
    spawn(process.execPath, ['cli/dist/main.js', 'scheduler'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', REDIS_URL: opts.redisUrl, DROVER_PREFIX: opts.prefix, DROVER_LOG_LEVEL: 'warn', DROVER_CALLBACK_SECRET: `whsec_${randomBytes(32).toString('base64')}` },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
}

async function stop(procs: ChildProcess[]): Promise<void> {
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.filter((p) => p.exitCode === null && p.signalCode === null).map((p) => once(p, 'exit')));
}

/** b - a per job, for two epoch-ms hash fields, read in pipelined chunks. */
async function fieldGaps(redis: ReturnType<typeof createRedis>, keys: string[], a: string, b: string): Promise<number[]> {
  const gaps: number[] = [];
  for (let i = 0; i < keys.length; i += 5000) {
    const pipe = redis.pipeline();
    for (const k of keys.slice(i, i + 5000)) pipe.hmget(k, a, b);
    for (const [, v] of (await pipe.exec()) ?? []) {
      const [x, y] = v as [string, string];
      gaps.push(Number(y) - Number(x));
    }
  }
  return gaps.sort((p, q) => p - q);
}

export async function runSchedulerBench(opts: SchedulerBenchOptions): Promise<[string, string][]> {
  const redis = createRedis(opts.redisUrl, 'worker');
  await redis.connect();
  const store = new JobStore(redis, opts.prefix);
  const schedules = new ScheduleStore(redis, store.keys);
  const rows: [string, string][] = [];
  const schedulers = startSchedulers(opts);
  try {
    // Delayed jobs: created before the window opens, then fired by the schedulers.
    const spec = normalizeJobSpec({ argv: ['/bin/true'], queue: 'bench-delayed' }, DEFAULT_SPEC_DEFAULTS);
    const memBefore = await usedMemory(redis);
    const windowStart = Date.now() + 20_000;
    const ids: string[] = [];
    for (let i = 0; i < opts.delayed; i += 1000) {
      const batch: NewJob[] = [];
      for (let j = i; j < Math.min(opts.delayed, i + 1000); j++) {
        const id = newJobId();
        ids.push(id);
        batch.push({ id, spec, runAt: windowStart + Math.floor((j / opts.delayed) * 10_000) });
      }
      await store.create(batch);
    }
    const perJob = (await usedMemory(redis)) - memBefore;
    if (Date.now() > windowStart) process.stderr.write('bench: creating the delayed jobs took longer than 20 s; some fired during creation\n');
    while ((await redis.zcard(`${store.keys.base}:delayed`)) > 0 || Date.now() < windowStart + 10_000) await sleep(100);
    await sleep(500);
    const lags = await fieldGaps(redis, ids.map((id) => store.keys.job(id)), 'runAt', 'queuedAt');
    rows.push([`(6) ${opts.delayed} delayed jobs due within 10 s, 2 schedulers: fire lag p50, ms`, pct(lags, 50).toFixed(0)]);
    rows.push(['    fire lag p99, ms  (target <= 100)', pct(lags, 99).toFixed(0)]);
    rows.push(['    fire lag max, ms', (lags[lags.length - 1] ?? NaN).toFixed(0)]);
    rows.push(['    Redis memory per delayed job, bytes', (perJob / opts.delayed).toFixed(0)]);

    // Cron: all schedules fire every minute at the same second.
    const now = Date.now();
    const second = new Date(now + 15_000).getUTCSeconds();
    const cron = `${second} * * * * *`;
    const firstFire = nextFireAfter(cron, 'UTC', now + 5_000)!;
    const def = { cron, timezone: 'UTC', job: { argv: ['/bin/true'], queue: 'bench-cron' }, overlap: 'allow' as const, misfire: 'run-once' as const, description: '', alertAfterFailures: null };
    for (let i = 0; i < opts.schedules; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, opts.schedules - i) }, (_, j) => schedules.put('create', `s${i + j}`, def, true, firstFire)),
      );
    }
    while (Date.now() < firstFire + 1000) await sleep(200);
    const key = `${store.keys.base}:idx:q:bench-cron`;
    const deadline = Date.now() + 60_000;
    while ((await redis.zcard(key)) < opts.schedules && Date.now() < deadline) await sleep(100);
    const cronIds = await redis.zrange(key, 0, -1);
    const cronLags = await fieldGaps(redis, cronIds.map((id) => store.keys.job(id)), 'scheduledFor', 'createdAt');
    rows.push([`(7) ${opts.schedules} cron schedules firing in the same second: jobs created`, String(cronIds.length)]);
    rows.push(['    lag p99, ms', pct(cronLags, 99).toFixed(0)]);
    rows.push(['    lag of the last fire, ms', (cronLags[cronLags.length - 1] ?? NaN).toFixed(0)]);
  } finally {
    await stop(schedulers);
    await redis.quit();
  }
  return rows;
}
