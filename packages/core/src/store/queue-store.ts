import type { Redis } from 'ioredis';
import type { JobRecord } from '../model/job-record.js';
import { settingsFromHash, settingsToHash, type QueueSettings, type QueueSettingsInput } from '../model/queue.js';
import type { JobStatus } from '../model/states.js';
import type { JobStore } from './job-store.js';
import type { DepthState } from '../telemetry/metrics.js';

/** Finished states counted per minute for a queue's "last hour" figures (see endJob in scripts.ts). */
const FINISHED: JobStatus[] = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost'];
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
}

/** Queue settings and live figures. Settings are read by the claim and release scripts, not here. */
export class QueueStore {
  constructor(private readonly jobs: JobStore) {}

  private get redis(): Redis {
    return this.jobs.redis;
  }

  private cfgKey(name: string): string {
    return `${this.jobs.keys.base}:qcfg:${name}`;
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

  /** Every queue's unfinished jobs by state: five counters per queue in one round trip, no scan of jobs. */
  async depths(): Promise<{ queue: string; counts: Record<DepthState, number> }[]> {
    const names = await this.names();
    if (names.length === 0) return [];
    const k = this.jobs.keys;
    const p = this.redis.pipeline();
    for (const name of names) {
      for (const s of ['waiting', 'delayed', 'queued', 'running'] as const) p.zcard(k.index(name, s));
      p.zcard(`${k.base}:q:${name}:parked`);
    }
    const n = ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return Number(v);
    });
    return names.map((queue, i) => {
      const [waiting = 0, delayed = 0, queued = 0, running = 0, parked = 0] = n.slice(i * 5, i * 5 + 5);
      return { queue, counts: { waiting, delayed, queued, running, parked } };
    });
  }

  async view(name: string, now = Date.now()): Promise<QueueView> {
    const k = this.jobs.keys;
    const minute = Math.floor(now / 60_000);
    const p = this.redis.pipeline();
    for (const s of ['waiting', 'delayed', 'queued', 'running'] as const) p.zcard(k.index(name, s));
    p.zcard(`${k.base}:q:${name}:parked`);
    p.zrange(k.index(name, 'running'), 0, 99);
    for (let m = minute - HOUR_MINUTES + 1; m <= minute; m++) p.hgetall(`${k.base}:q:${name}:done:${m}`);
    const rows = ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return v;
    });
    const lastHour: Record<string, number> = Object.fromEntries(FINISHED.map((s) => [s, 0]));
    for (const bucket of rows.slice(6) as Record<string, string>[]) {
      for (const [status, n] of Object.entries(bucket)) lastHour[status] = (lastHour[status] ?? 0) + Number(n);
    }
    const running = await this.jobs.getMany(rows[5] as string[]);
    // Ids are time-ordered, so the index's first member is the oldest queued job.
    const [head] = await this.redis.zrange(k.index(name, 'queued'), 0, 0);
    const queuedAt = head ? await this.redis.hget(k.job(head), 'queuedAt') : null;
    return {
      name,
      settings: await this.settings(name),
      counts: {
        waiting: rows[0] as number,
        delayed: rows[1] as number,
        queued: rows[2] as number,
        parked: rows[4] as number,
        running: rows[3] as number,
        lastHour,
      },
      running: running.map((j) => ({ id: j.id, command: j.command, argv: j.argv, runnerId: j.runnerId, pid: j.pid, startedAt: j.startedAt, attempts: j.attempts })),
      oldestQueuedAt: queuedAt ? new Date(Number(queuedAt)).toISOString() : null,
    };
  }
}
