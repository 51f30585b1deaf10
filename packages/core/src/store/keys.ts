import type { JobStatus } from '../model/states.js';
import { keyName, type KeyKind } from './key-schema.js';

/** A Redis stream entry id (`<ms>-<seq>`): event ids, log cursors and archive log cursors all are. */
export function isStreamId(id: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(id);
}

/**
 * Every Drover key is `{prefix}:...`: the braces make the prefix a Redis Cluster hash tag, so every key a
 * script touches lives in one slot. The names come from the key schema (key-schema.ts), which the Lua scripts'
 * `K.<kind>` functions are generated from too.
 */
export class Keys {
  readonly base: string;

  constructor(prefix: string) {
    this.base = `{${prefix}}`;
  }

  /** KEYS[1] of every store script call (key-schema.ts: routing); the scripts take the hash tag from it. */
  get routing(): string {
    return this.name('routing');
  }

  /** Any key of the schema by kind, e.g. `name('schedule', 'nightly')`. */
  name(kind: KeyKind, ...parts: (string | number)[]): string {
    return keyName(this.base, kind, ...parts);
  }

  job(id: string): string {
    return this.name('job', id);
  }
  /** A runner's registry hash (expires unless its heartbeat renews it); `:desired` beside it is what operators asked. */
  runner(id: string): string {
    return this.name('runner', id);
  }
  runnerDesired(id: string): string {
    return this.name('runnerDesired', id);
  }
  /** Runners by last heartbeat (zset), and those already reported gone (set). */
  get runners(): string {
    return this.name('runners');
  }
  get runnersGone(): string {
    return this.name('runnersGone');
  }
  log(id: string): string {
    return this.name('jobLog', id);
  }
  attempts(id: string): string {
    return this.name('jobAttempts', id);
  }
  /** Lex-ordered (score 0) id index; ULIDs sort by time so this is also a time index. */
  index(queue: string | undefined, status: JobStatus | undefined): string {
    if (queue && status) return this.name('indexQueueStatus', queue, status);
    if (queue) return this.name('indexQueue', queue);
    if (status) return this.name('indexStatus', status);
    return this.name('indexAll');
  }
  get delayed(): string {
    return this.name('delayed');
  }
  get outbox(): string {
    return this.name('outbox');
  }
  get leases(): string {
    return this.name('leases');
  }
  get queues(): string {
    return this.name('queues');
  }
  /** An Idempotency-Key binding (see idempotency.ts); the scripts build the same name from `base`. */
  idempotency(digest: string): string {
    return this.name('idempotency', digest);
  }
  get control(): string {
    return this.name('control');
  }
  /** Operator variables (hash: name -> value, sealed with DROVER_ENV_KEY when set): env of every later run. */
  get variables(): string {
    return this.name('variables');
  }
  /** Calendars (hash: name -> JSON {dates, updatedAt}): dates schedules referencing one do not fire on. */
  get calendars(): string {
    return this.name('calendars');
  }
  /** Prefix handed to BullMQ so its keys share our hash tag. */
  get bull(): string {
    return this.name('bull');
  }
}
