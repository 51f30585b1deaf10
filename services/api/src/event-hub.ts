import { coerceError, connectRedis, eventFromEntry, type DroverEvent, type EventStore, type Logger } from '@drover/core';
import type { Redis } from 'ioredis';

type Listener = (e: DroverEvent) => void;

export interface Subscriber {
  /** Called for every new event, in stream order. */
  event: Listener;
  /** Called when the hub closes (the API shuts down): end the stream. */
  end: () => void;
}

/**
 * One reader of the events stream per API process, fanning new events out to every SSE client: a blocking XREAD on
 * a connection of its own, started by the first subscriber. Clients that resume read their backlog from the
 * stream themselves (see routes/events.ts) and then continue on the hub.
 */
export class EventHub {
  private readonly listeners = new Set<Subscriber>();
  private conn: Redis | undefined;
  private started: Promise<void> | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Id of the newest event handed out. */
  position = '0-0';

  constructor(
    private readonly events: EventStore,
    private readonly log: Logger,
  ) {}

  /** Adds a subscriber once the hub reads; returns the function that removes it. */
  async subscribe(sub: Subscriber): Promise<() => void> {
    if (this.stopped) throw new Error('the events hub is closed');
    this.started ??= this.start();
    await this.started;
    this.listeners.add(sub);
    return () => this.listeners.delete(sub);
  }

  private async start(): Promise<void> {
    this.conn = this.events.redis.duplicate();
    this.conn.on('error', (err) => this.log.warn({ err: err.message }, 'redis connection error (events)'));
    await connectRedis(this.conn, 10_000);
    this.position = await this.events.latestId();
    this.loop = this.run(this.conn);
  }

  private async run(conn: Redis): Promise<void> {
    while (!this.stopped) {
      try {
        const res = await conn.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', this.events.key, this.position);
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            this.position = id;
            const event = eventFromEntry(id, fields);
            for (const l of this.listeners) l.event(event);
          }
        }
      } catch (err) {
        if (this.stopped) return;
        this.log.warn({ err: coerceError(err) }, 'reading the events stream failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Ends every stream (so the HTTP server can close) and stops reading. */
  async close(): Promise<void> {
    this.stopped = true;
    for (const l of this.listeners) l.end();
    this.listeners.clear();
    this.conn?.disconnect();
    await this.loop?.catch(() => undefined);
  }
}
