import type { Redis } from 'ioredis';
import { isStreamId, type Keys } from './keys.js';
import { EVENTS_MAX_LEN } from './scripts.js';

/** Every event type, as the stream and the API spell them. */
export const EVENT_TYPES = [
  'job.submitted', 'job.started', 'job.slow', 'job.succeeded', 'job.failed', 'job.timed_out', 'job.cancelled', 'job.lost', 'job.expired', 'job.retried',
  'schedule.fired', 'schedule.skipped', 'schedule.misfired', 'schedule.failing', 'schedule.recovered',
  'runner.joined', 'runner.draining', 'runner.resumed', 'runner.stopped', 'runner.gone',
  // A running job's own report of how far it is (rate-limited by the runner: about one a second per job).
  'job.progress',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The entries of an event filter (webhook `events`, `types=`) that match no event type: exact types must exist,
 * a family (`job.*`) must have a type. A subscription to a misspelt type would otherwise wait for ever.
 */
export function unknownEventPatterns(patterns: readonly string[]): string[] {
  const families = new Set(EVENT_TYPES.map((t) => `${t.split('.')[0]}.*`));
  return patterns.filter((p) => (p.endsWith('.*') ? !families.has(p) : !(EVENT_TYPES as readonly string[]).includes(p)));
}

/** The allowed values, for error messages: every type and family. */
export function eventPatternsHint(): string {
  const families = [...new Set(EVENT_TYPES.map((t) => `${t.split('.')[0]}.*`))];
  return `one of ${[...EVENT_TYPES, ...families].join(', ')}`;
}

export interface DroverEvent {
  /** The stream id: monotonic, and the `Last-Event-ID` to resume from. */
  id: string;
  type: EventType;
  /** ISO time the event was recorded (from its id). */
  ts: string;
  jobId: string | null;
  queue: string | null;
  data: Record<string, unknown>;
}

export interface EventFilter {
  /** Exact types, or prefixes ending in `.*` (`job.*`). */
  types?: string[];
  queue?: string;
  jobId?: string;
}

export const isEventId = isStreamId;

/** Stream ids compare as (ms, seq) pairs. */
export function compareEventIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

export function matches(e: DroverEvent, f: EventFilter): boolean {
  if (f.queue && e.queue !== f.queue) return false;
  if (f.jobId && e.jobId !== f.jobId) return false;
  if (f.types && f.types.length > 0) {
    return f.types.some((t) => (t.endsWith('.*') ? e.type.startsWith(t.slice(0, -1)) : e.type === t));
  }
  return true;
}

export function eventFromEntry(id: string, fields: string[]): DroverEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return {
    id,
    type: f.t as EventType,
    ts: new Date(Number(id.split('-')[0])).toISOString(),
    jobId: f.j || null,
    queue: f.q || null,
    data: f.d ? (JSON.parse(f.d) as Record<string, unknown>) : {},
  };
}

/**
 * The events stream `{prefix}:events`. Job and schedule events are appended by the Lua scripts in the same atomic
 * step as the change; runner events from TypeScript here. Capped by length (EVENTS_MAX_LEN) and by age (trim).
 */
export class EventStore {
  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
  ) {}

  get key(): string {
    return this.keys.name('events');
  }

  async append(type: EventType, fields: { jobId?: string; queue?: string; data?: Record<string, unknown> } = {}): Promise<string> {
    const id = await this.redis.xadd(this.key, 'MAXLEN', '~', EVENTS_MAX_LEN, '*', 't', type, 'j', fields.jobId ?? '', 'q', fields.queue ?? '', 'd', JSON.stringify(fields.data ?? {}));
    return id ?? '';
  }

  /** Events after `after` (exclusive), oldest first. */
  async read(after: string, limit: number): Promise<DroverEvent[]> {
    const rows = await this.redis.xrange(this.key, `(${after}`, '+', 'COUNT', limit);
    return rows.map(([id, fields]) => eventFromEntry(id, fields));
  }

  /** The id of the newest event, or `0-0` if there is none. */
  async latestId(): Promise<string> {
    const rows = await this.redis.xrevrange(this.key, '+', '-', 'COUNT', 1);
    return rows[0]?.[0] ?? '0-0';
  }

  /** The id of the oldest event kept, or null if there is none. */
  async oldestId(): Promise<string | null> {
    const rows = await this.redis.xrange(this.key, '-', '+', 'COUNT', 1);
    return rows[0]?.[0] ?? null;
  }

  /** Drops events older than `retentionMs`. */
  async trimOlderThan(retentionMs: number, now = Date.now()): Promise<void> {
    await this.redis.xtrim(this.key, 'MINID', '~', `${Math.max(0, now - retentionMs)}-0`);
  }
}
