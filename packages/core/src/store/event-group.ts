import type { EventStore } from './event-store.js';

export type StreamEntry = [id: string, fields: string[]];

export interface EventGroupOptions {
  group: string;
  /** This process's consumer name in the group. */
  consumer: string;
  /** Where a new group starts: `$` (events from now on) or `0` (everything the stream still holds). */
  startAt: '$' | '0';
  /** Entries another consumer left unacknowledged this long are taken over. */
  claimIdleMs: number;
  batch: number;
}

/**
 * Reads the events stream through a Redis consumer group, for workers that must handle every event once across
 * replicas and restarts (webhook intake, the archiver): first this consumer's own unacknowledged entries (left by
 * a crash), then, now and then, entries idle too long in other consumers (dead replicas), then new ones. The caller
 * acknowledges what it handled, in the same step as its effect where it can.
 */
export class EventGroupReader {
  private ready = false;
  private backlogRead = false;
  private lastClaim = 0;

  constructor(
    private readonly events: EventStore,
    private readonly opts: EventGroupOptions,
  ) {}

  /**
   * Creates the group if it does not exist yet. A service calls it while starting, so that with startAt '$' every
   * event after its start is read (created lazily, events between start and the first read would be skipped).
   */
  async ensureGroup(): Promise<void> {
    if (this.ready) return;
    try {
      await this.events.redis.xgroup('CREATE', this.events.key, this.opts.group, this.opts.startAt, 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
    this.ready = true;
  }

  async next(now = Date.now()): Promise<StreamEntry[]> {
    const { redis, key } = this.events;
    const { group, consumer, batch, claimIdleMs } = this.opts;
    await this.ensureGroup();
    const entries: StreamEntry[] = [];
    if (!this.backlogRead) {
      entries.push(...(await this.read('0')));
      if (entries.length < batch) this.backlogRead = true;
    }
    if (now - this.lastClaim > claimIdleMs / 3) {
      this.lastClaim = now;
      const [, claimed] = (await redis.xautoclaim(key, group, consumer, claimIdleMs, '0-0', 'COUNT', batch)) as [string, StreamEntry[]];
      entries.push(...claimed.filter((e) => e[1] !== null));
    }
    if (this.backlogRead && entries.length < batch) entries.push(...(await this.read('>')));
    return entries;
  }

  private async read(from: '0' | '>'): Promise<StreamEntry[]> {
    const res = (await this.events.redis.xreadgroup('GROUP', this.opts.group, this.opts.consumer, 'COUNT', this.opts.batch, 'STREAMS', this.events.key, from)) as
      | [string, StreamEntry[]][]
      | null;
    return res?.[0]?.[1] ?? [];
  }
}
