import type { ChainableCommander, Redis } from 'ioredis';
import type { Keys } from './keys.js';

/**
 * Small rolling aggregates for the dashboard's charts, so they work without Prometheus: per queue and time bucket,
 * how many jobs ended in each outcome, how many started, and a histogram of how long they waited in the queue; per
 * bucket, each runner's load (sampled). Two resolutions: one-minute buckets for the last hour, quarter-hour buckets
 * for the last day. Every bucket is a small hash that expires on its own, so the memory used stays bounded by
 * (queues + 1) × (120 + 100) hashes whatever the traffic. All keys are under the prefix's hash tag (Cluster-ready).
 */

export type StatsRange = 'hour' | 'day';

interface Resolution {
  /** Bucket width, ms. */
  stepMs: number;
  /** Buckets a read returns (the range). */
  points: number;
  /** A bucket is kept this long after it starts. */
  keepMs: number;
}

export const STATS_RESOLUTIONS: Readonly<Record<StatsRange, Resolution>> = {
  hour: { stepMs: 60_000, points: 60, keepMs: 2 * 3600_000 },
  day: { stepMs: 900_000, points: 96, keepMs: 25 * 3600_000 },
};

/** The outcomes counted per bucket: the final states a job can end in. */
export const STATS_OUTCOMES = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'expired'] as const;
export type StatsOutcome = (typeof STATS_OUTCOMES)[number];

/** Upper bounds (ms) of the queue-wait histogram's bins; one more bin holds everything above the last. */
export const WAIT_BOUNDS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1800_000, 3600_000] as const;

/** What one event adds to its queue's buckets (see StatsStore.addJobEvents). */
export type JobStatsEvent =
  | { kind: 'started'; queue: string; at: number; waitMs: number | null }
  | { kind: 'ended'; queue: string; at: number; outcome: StatsOutcome }
  | { kind: 'retried'; queue: string; at: number };

export interface RunnerSample {
  id: string;
  running: number;
  slots: number;
}

export interface WaitPercentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface QueueStats {
  name: string;
  /** Jobs that ended in each outcome, one number per bucket. */
  outcomes: Record<StatsOutcome, number[]>;
  started: number[];
  retried: number[];
  /** Queue wait (queued to started) per bucket, ms; null where nothing started. */
  wait: { p50: (number | null)[]; p90: (number | null)[]; p99: (number | null)[] };
  totals: Record<StatsOutcome | 'started' | 'retried', number>;
  /** Over the whole range. */
  waitOverall: WaitPercentiles & { count: number };
}

export interface RunnerLoadSeries {
  id: string;
  /** Mean running jobs over the samples of each bucket; null where the runner was not seen. */
  running: (number | null)[];
  /** Its slots (concurrency) in each bucket; null where it was not seen. */
  slots: (number | null)[];
}

export interface StatsView {
  range: StatsRange;
  stepMs: number;
  /** Start of each bucket, epoch ms, oldest first; the last is the bucket now fills. */
  times: number[];
  queues: QueueStats[];
  /** Null when not asked for (tokens restricted to some queues do not see shared runners' load). */
  runners: RunnerLoadSeries[] | null;
}

/** The histogram bin a wait falls in. */
export function waitBin(ms: number): number {
  const i = WAIT_BOUNDS_MS.findIndex((b) => ms <= b);
  return i < 0 ? WAIT_BOUNDS_MS.length : i;
}

/**
 * The q-quantile (0..1) of a histogram, interpolated within its bin (the bins are narrow enough for a chart). The
 * open top bin answers its lower bound. Null for an empty histogram.
 */
export function quantile(bins: readonly number[], q: number): number | null {
  const total = bins.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < bins.length; i++) {
    const n = bins[i] ?? 0;
    if (n > 0 && seen + n >= rank) {
      const lo = i === 0 ? 0 : WAIT_BOUNDS_MS[i - 1]!;
      const hi = WAIT_BOUNDS_MS[i];
      if (hi === undefined) return lo;
      return Math.round(lo + ((hi - lo) * Math.max(0, rank - seen)) / n);
    }
    seen += n;
  }
  return WAIT_BOUNDS_MS[WAIT_BOUNDS_MS.length - 1]!;
}

const bucketOf = (at: number, stepMs: number): number => Math.floor(at / stepMs) * stepMs;

export class StatsStore {
  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
  ) {}

  queueKey(queue: string, range: StatsRange, bucket: number): string {
    return this.keys.name('statsQueue', queue, range, bucket);
  }

  runnersKey(range: StatsRange, bucket: number): string {
    return this.keys.name('statsRunners', range, bucket);
  }

  /** The key whose SET NX elects one API replica to take a runner sample in a slot of `slotMs`. */
  sampleClaimKey(slot: number): string {
    return this.keys.name('statsSampled', slot);
  }

  /**
   * Queues a batch of events' increments on `m` (both resolutions), summed first: one HINCRBY per bucket and field
   * and one PEXPIREAT per bucket, however many events the batch holds. The caller runs them, e.g. with the XACK.
   */
  addJobEvents(m: ChainableCommander, events: readonly JobStatsEvent[]): void {
    const buckets = new Map<string, { expireAt: number; fields: Map<string, number> }>();
    const add = (key: string, expireAt: number, field: string): void => {
      let b = buckets.get(key);
      if (!b) buckets.set(key, (b = { expireAt, fields: new Map() }));
      b.fields.set(field, (b.fields.get(field) ?? 0) + 1);
    };
    for (const e of events) {
      for (const range of ['hour', 'day'] as const) {
        const { stepMs, keepMs } = STATS_RESOLUTIONS[range];
        const bucket = bucketOf(e.at, stepMs);
        const key = this.queueKey(e.queue, range, bucket);
        if (e.kind === 'ended') add(key, bucket + keepMs, e.outcome);
        else if (e.kind === 'retried') add(key, bucket + keepMs, 'retried');
        else {
          add(key, bucket + keepMs, 'started');
          if (e.waitMs !== null && e.waitMs >= 0) add(key, bucket + keepMs, `w${waitBin(e.waitMs)}`);
        }
      }
    }
    for (const [key, b] of buckets) {
      for (const [field, n] of b.fields) m.hincrby(key, field, n);
      m.pexpireat(key, b.expireAt);
    }
  }

  /** Queues one sample of every live runner's load on `m` (sums and a sample count, so a read can average). */
  addRunnerSample(m: ChainableCommander, at: number, runners: readonly RunnerSample[]): void {
    for (const range of ['hour', 'day'] as const) {
      const { stepMs, keepMs } = STATS_RESOLUTIONS[range];
      const bucket = bucketOf(at, stepMs);
      const key = this.runnersKey(range, bucket);
      for (const r of runners) {
        m.hincrby(key, `n:${r.id}`, 1);
        m.hincrby(key, `r:${r.id}`, r.running);
        m.hincrby(key, `s:${r.id}`, r.slots);
      }
      m.pexpireat(key, bucket + keepMs);
    }
  }

  /** The buckets of `range` ending at `now` for `queues` (and runners' load when `runners`), in one round trip. */
  async read(range: StatsRange, queues: readonly string[], opts: { now?: number; runners?: boolean } = {}): Promise<StatsView> {
    const { stepMs, points } = STATS_RESOLUTIONS[range];
    const last = bucketOf(opts.now ?? Date.now(), stepMs);
    const times = Array.from({ length: points }, (_, i) => last - (points - 1 - i) * stepMs);
    const p = this.redis.pipeline();
    for (const q of queues) for (const t of times) p.hgetall(this.queueKey(q, range, t));
    if (opts.runners) for (const t of times) p.hgetall(this.runnersKey(range, t));
    const rows = ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return v as Record<string, string>;
    });
    return {
      range,
      stepMs,
      times,
      queues: queues.map((name, qi) => queueStats(name, rows.slice(qi * points, (qi + 1) * points))),
      runners: opts.runners ? runnerLoad(rows.slice(queues.length * points)) : null,
    };
  }
}

function queueStats(name: string, buckets: Record<string, string>[]): QueueStats {
  const num = (h: Record<string, string>, f: string): number => Number(h[f] ?? 0) || 0;
  const outcomes = Object.fromEntries(STATS_OUTCOMES.map((o) => [o, buckets.map((h) => num(h, o))])) as Record<StatsOutcome, number[]>;
  const bins = buckets.map((h) => Array.from({ length: WAIT_BOUNDS_MS.length + 1 }, (_, i) => num(h, `w${i}`)));
  const overall = bins.reduce((acc, b) => acc.map((n, i) => n + (b[i] ?? 0)), new Array<number>(WAIT_BOUNDS_MS.length + 1).fill(0));
  const started = buckets.map((h) => num(h, 'started'));
  const retried = buckets.map((h) => num(h, 'retried'));
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  return {
    name,
    outcomes,
    started,
    retried,
    wait: { p50: bins.map((b) => quantile(b, 0.5)), p90: bins.map((b) => quantile(b, 0.9)), p99: bins.map((b) => quantile(b, 0.99)) },
    totals: { ...(Object.fromEntries(STATS_OUTCOMES.map((o) => [o, sum(outcomes[o])])) as Record<StatsOutcome, number>), started: sum(started), retried: sum(retried) },
    waitOverall: { p50: quantile(overall, 0.5), p90: quantile(overall, 0.9), p99: quantile(overall, 0.99), count: sum(overall) },
  };
}

function runnerLoad(buckets: Record<string, string>[]): RunnerLoadSeries[] {
  const byId = new Map<string, RunnerLoadSeries>();
  buckets.forEach((h, i) => {
    for (const [field, n] of Object.entries(h)) {
      if (!field.startsWith('n:')) continue;
      const id = field.slice(2);
      const samples = Number(n);
      if (!(samples > 0)) continue;
      let r = byId.get(id);
      if (!r) {
        r = { id, running: new Array<number | null>(buckets.length).fill(null), slots: new Array<number | null>(buckets.length).fill(null) };
        byId.set(id, r);
      }
      r.running[i] = Math.round((Number(h[`r:${id}`] ?? 0) / samples) * 100) / 100;
      r.slots[i] = Math.round((Number(h[`s:${id}`] ?? 0) / samples) * 100) / 100;
    }
  });
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}
