import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import {
  EventGroupReader, STATS_OUTCOMES, coerceError, eventFromEntry, type DroverEvent, type EventStore, type JobStatsEvent, type JobStore, type Logger,
  type RunnerRegistry, type StatsOutcome, type StatsStore,
} from '@drover/core';

const GROUP = 'stats';
const BATCH = 500;
/** A dead replica's unacknowledged events are taken over after this. */
const CLAIM_IDLE_MS = 30_000;

export interface StatsAggregatorOptions {
  events: EventStore;
  jobs: JobStore;
  stats: StatsStore;
  runners: RunnerRegistry;
  log: Logger;
  /** How often an idle aggregator looks for new events, ms. Default 1000. */
  pollMs?: number;
  /** How often runners' load is sampled (by one replica per slot), ms. Default 10 000. */
  sampleMs?: number;
  /** This process's name in the consumer group; default host, pid and a random part. */
  consumer?: string;
}

const OUTCOMES = new Set<string>(STATS_OUTCOMES);

/** The stream id's time: when the event was recorded (Redis' clock, the one the scripts stamp records with). */
const eventTime = (e: DroverEvent): number => Number(e.id.split('-')[0]);

/**
 * Keeps the dashboard's per-minute aggregates (StatsStore): reads job events through a consumer group on the events
 * stream, so each event is counted once across API replicas, and writes a batch's increments and its XACK in one
 * MULTI, so a replica that dies mid-batch leaves the batch wholly uncounted and unacknowledged (it is read again
 * or taken over): nothing is lost or counted twice. Also samples every live runner's load; a SET NX per sample slot
 * picks the one replica that records it.
 */
export class StatsAggregator {
  private reader: EventGroupReader;
  private readonly consumer: string;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private lastSampleSlot = -1;
  private lastWarning = { message: '', at: 0 };

  constructor(private readonly opts: StatsAggregatorOptions) {
    this.consumer = opts.consumer ?? `api-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    // From now on: events recorded before the first aggregator ever ran are not folded in (they may be days old).
    this.reader = this.newReader();
  }

  private newReader(): EventGroupReader {
    return new EventGroupReader(this.opts.events, { group: GROUP, consumer: this.consumer, startAt: '$', claimIdleMs: CLAIM_IDLE_MS, batch: BATCH });
  }

  /** Creates the group (so no event after this is missed), then runs until close(). */
  async start(): Promise<void> {
    await this.reader.ensureGroup();
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const pollMs = this.opts.pollMs ?? 1000;
    while (!this.stopped) {
      let n = 0;
      try {
        await this.sample();
        n = await this.step();
      } catch (err) {
        if (this.stopped) return;
        this.failed(err);
      }
      if (n < BATCH && !this.stopped) await new Promise<void>((r) => {
        const t = setTimeout(r, pollMs);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  /** Logs a failure once a minute while it lasts (Redis down for an hour is one line a minute, not 3600). */
  private failed(err: unknown): void {
    const e = coerceError(err);
    // The stream was deleted (and with it the group): make the group again on the next read.
    if (/NOGROUP/.test(e.message)) this.reader = this.newReader();
    const now = Date.now();
    if (e.message === this.lastWarning.message && now - this.lastWarning.at < 60_000) return;
    this.lastWarning = { message: e.message, at: now };
    this.opts.log.warn({ err: e }, 'updating the dashboard statistics failed; retrying');
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    // A consumer with nothing pending is just a name in the group: remove it so restarts do not pile names up.
    try {
      const { redis, key } = this.opts.events;
      const pending = await redis.xpending(key, GROUP, '-', '+', 1, this.consumer);
      if (pending.length === 0) await redis.xgroup('DELCONSUMER', key, GROUP, this.consumer);
    } catch (err) {
      this.opts.log.debug({ err: coerceError(err) }, 'could not remove the statistics consumer');
    }
  }

  /** One batch of events; returns how many it handled. */
  async step(now = Date.now()): Promise<number> {
    const entries = await this.reader.next(now);
    if (entries.length === 0) return 0;
    const events = entries.map(([id, f]) => eventFromEntry(id, f)).filter((e) => e.queue && e.jobId);
    const increments = await this.toStats(events);
    const m = this.opts.jobs.redis.multi();
    this.opts.stats.addJobEvents(m, increments);
    m.xack(this.opts.events.key, GROUP, ...entries.map((e) => e[0]));
    const replies = await m.exec();
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw failed?.[0] ?? new Error('the statistics transaction was discarded');
    return entries.length;
  }

  /**
   * What events add to the buckets. A start's queue wait comes from the event's queuedAt; events recorded before
   * starts carried it have the job's queuedAt read instead (in one pipeline).
   */
  private async toStats(events: DroverEvent[]): Promise<JobStatsEvent[]> {
    const queuedAt = new Map<string, number>();
    const unknown: DroverEvent[] = [];
    for (const e of events) {
      if (e.type !== 'job.started') continue;
      const q = e.data.queuedAt;
      if (typeof q === 'number') queuedAt.set(e.id, q);
      else if (q === undefined) unknown.push(e);
    }
    if (unknown.length > 0) {
      const p = this.opts.jobs.redis.pipeline();
      for (const e of unknown) p.hget(this.opts.jobs.keys.job(e.jobId!), 'queuedAt');
      ((await p.exec()) ?? []).forEach(([err, v], i) => {
        if (!err && typeof v === 'string' && v !== '') queuedAt.set(unknown[i]!.id, Number(v));
      });
    }
    const out: JobStatsEvent[] = [];
    for (const e of events) {
      const at = eventTime(e);
      const queue = e.queue!;
      if (e.type === 'job.started') {
        const q = queuedAt.get(e.id);
        // A job re-queued since (a quick retry) has a later queuedAt: its wait is not this start's, leave it out.
        out.push({ kind: 'started', queue, at, waitMs: q !== undefined && q <= at ? at - q : null });
      } else if (e.type === 'job.retried') out.push({ kind: 'retried', queue, at });
      else if (e.type.startsWith('job.') && OUTCOMES.has(e.type.slice(4))) out.push({ kind: 'ended', queue, at, outcome: e.type.slice(4) as StatsOutcome });
    }
    return out;
  }

  /** Records every live runner's load once per sample slot (whichever replica comes first). */
  async sample(now = Date.now()): Promise<boolean> {
    const sampleMs = this.opts.sampleMs ?? 10_000;
    const slot = Math.floor(now / sampleMs);
    if (slot === this.lastSampleSlot) return false;
    this.lastSampleSlot = slot;
    const { stats } = this.opts;
    const won = await stats.redis.set(stats.sampleClaimKey(slot), this.consumer, 'PX', sampleMs * 2, 'NX');
    if (won !== 'OK') return false;
    const live = (await this.opts.runners.list(now)).filter((r) => r.state !== 'offline');
    if (live.length === 0) return true;
    const m = stats.redis.multi();
    stats.addRunnerSample(m, now, live.map((r) => ({ id: r.id, running: r.running.length, slots: r.concurrency ?? 0 })));
    await m.exec();
    return true;
  }
}
