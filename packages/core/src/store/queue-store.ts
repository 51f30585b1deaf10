import type { ChainableCommander, Redis } from 'ioredis';
import type { JobRecord } from '../model/job-record.js';
import { settingsFromHash, settingsToHash, type QueueSettings, type QueueSettingsInput } from '../model/queue.js';
import type { JobStatus } from '../model/states.js';
import type { JobStore } from './job-store.js';
import type { DepthState } from '../telemetry/metrics.js';
import type { QueueConsumer } from './runner-registry.js';

/** Finished states counted per minute for a queue's "last hour" figures (see endJob in scripts.ts). */
const FINISHED: JobStatus[] = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'expired'];
const HOUR_MINUTES = 60;

export interface QueueCounts {
  waiting: number;
  delayed: number;
  queued: number;
  /** Queued jobs held back by the queue's settings (paused, concurrency, rate). */
  parked: number;
  running: number;
  lastHour: Record<string, number>;
}

export interface QueueView {
  name: string;
  settings: QueueSettings;
  counts: QueueCounts;
  running: Pick<JobRecord, 'id' | 'command' | 'argv' | 'runnerId' | 'pid' | 'startedAt' | 'attempts'>[];
  /** When the longest-waiting queued job was queued (how long the queue's head has waited); null when none is. */
  oldestQueuedAt: string | null;
  /** The live runners that serve the queue (the API adds them; none: its jobs wait for a runner). */
  consumers?: QueueConsumer[];
}

/** Queue settings and live figures. Settings are read by the claim and release scripts, not here. */
export class QueueStore {
  constructor(private readonly jobs: JobStore) {}

  private get redis(): Redis {
    return this.jobs.redis;
  }

  private cfgKey(name: string): string {
    return this.jobs.keys.name('queueConfig', name);
  }

  /** A queue exists once it has settings or has seen a job. */
  async exists(name: string): Promise<boolean> {
    const [known, configured] = await Promise.all([this.redis.sismember(this.jobs.keys.queues, name), this.redis.exists(this.cfgKey(name))]);
    return known === 1 || configured === 1;
  }

  async names(): Promise<string[]> {
    return (await this.redis.smembers(this.jobs.keys.queues)).sort();
  }

  async settings(name: string): Promise<QueueSettings> {
    return settingsFromHash(await this.redis.hgetall(this.cfgKey(name)));
  }

  /** Applies the given settings (others stay) and returns the result. */
  async update(name: string, input: QueueSettingsInput): Promise<QueueSettings> {
    const { set, del } = settingsToHash(input);
    const m = this.redis.multi().sadd(this.jobs.keys.queues, name);
    if (Object.keys(set).length > 0) m.hset(this.cfgKey(name), set);
    if (del.length > 0) m.hdel(this.cfgKey(name), ...del);
    await m.exec();
    return this.settings(name);
  }

  /** Queues the five per-state counters of `name` on `p` (read back by `depthFrom`, in the same order). */
  private countDepth(p: ChainableCommander, name: string): void {
    const k = this.jobs.keys;
    for (const s of ['waiting', 'delayed', 'queued', 'running'] as const) p.zcard(k.index(name, s));
    p.zcard(k.name('queueParked', name));
  }

  /** Every queue's unfinished jobs by state: five counters per queue in one round trip, no scan of jobs. */
  async depths(): Promise<{ queue: string; counts: Record<DepthState, number> }[]> {
    const names = await this.names();
    if (names.length === 0) return [];
    const p = this.redis.pipeline();
    for (const name of names) this.countDepth(p, name);
    const n = results(await p.exec()).map(Number);
    return names.map((queue, i) => ({ queue, counts: depthFrom(n, i * 5) }));
  }

  async view(name: string, now = Date.now()): Promise<QueueView> {
    const k = this.jobs.keys;
    const minute = Math.floor(now / 60_000);
    const p = this.redis.pipeline();
    this.countDepth(p, name);
    p.hgetall(this.cfgKey(name));
    p.zrange(k.index(name, 'running'), 0, 99);
    // Ids are time-ordered, so the index's first member is the oldest queued job.
    p.zrange(k.index(name, 'queued'), 0, 0);
    for (let m = minute - HOUR_MINUTES + 1; m <= minute; m++) p.hgetall(k.name('queueDone', name, m));
    const rows = results(await p.exec());
    const lastHour: Record<string, number> = Object.fromEntries(FINISHED.map((s) => [s, 0]));
    for (const bucket of rows.slice(8) as Record<string, string>[]) {
      for (const [status, n] of Object.entries(bucket)) lastHour[status] = (lastHour[status] ?? 0) + Number(n);
    }
    const [head] = rows[7] as string[];
    const [running, queuedAt] = await Promise.all([this.jobs.getMany(rows[6] as string[]), head ? this.redis.hget(k.job(head), 'queuedAt') : null]);
    return {
      name,
      settings: settingsFromHash(rows[5] as Record<string, string>),
      counts: { ...depthFrom(rows.slice(0, 5).map(Number), 0), lastHour },
      running: running.map((j) => ({ id: j.id, command: j.command, argv: j.argv, runnerId: j.runnerId, pid: j.pid, startedAt: j.startedAt, attempts: j.attempts })),
      oldestQueuedAt: queuedAt ? new Date(Number(queuedAt)).toISOString() : null,
    };
  }
}

/** A pipeline's replies, throwing the first error. */
function results(rows: [Error | null, unknown][] | null): unknown[] {
  return (rows ?? []).map(([err, v]) => {
    if (err) throw err;
    return v;
  });
}

/** The counters `countDepth` queued, from position `at`. */
function depthFrom(n: number[], at: number): Record<DepthState, number> {
  const [waiting = 0, delayed = 0, queued = 0, running = 0, parked = 0] = n.slice(at, at + 5);
  return { waiting, delayed, queued, running, parked };
}
