import type { JobStatus } from '../model/states.js';

/** A Redis stream entry id (`<ms>-<seq>`): event ids, log cursors and archive log cursors all are. */
export function isStreamId(id: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(id);
}

/**
 * Every Drover key is `{prefix}:...`: the braces make the prefix a Redis Cluster hash tag, so every key a
 * script touches lives in one slot. Lua scripts rebuild names from `base` with the same rules as here.
 */
export class Keys {
  readonly base: string;

  constructor(prefix: string) {
    this.base = `{${prefix}}`;
  }

  job(id: string): string {
    return `${this.base}:job:${id}`;
  }
  /** A runner's registry hash (expires unless its heartbeat renews it); `:desired` beside it is what operators asked. */
  runner(id: string): string {
    return `${this.base}:runner:${id}`;
  }
  runnerDesired(id: string): string {
    return `${this.base}:runner:${id}:desired`;
  }
  /** Runners by last heartbeat (zset), and those already reported gone (set). */
  get runners(): string {
    return `${this.base}:runners`;
  }
  get runnersGone(): string {
    return `${this.base}:runners:gone`;
  }
  log(id: string): string {
    return `${this.base}:job:${id}:log`;
  }
  attempts(id: string): string {
    return `${this.base}:job:${id}:attempts`;
  }
  /** Lex-ordered (score 0) id index; ULIDs sort by time so this is also a time index. */
  index(queue: string | undefined, status: JobStatus | undefined): string {
    if (queue && status) return `${this.base}:idx:qs:${queue}:${status}`;
    if (queue) return `${this.base}:idx:q:${queue}`;
    if (status) return `${this.base}:idx:s:${status}`;
    return `${this.base}:idx:all`;
  }
  get delayed(): string {
    return `${this.base}:delayed`;
  }
  get outbox(): string {
    return `${this.base}:outbox`;
  }
  get leases(): string {
    return `${this.base}:leases`;
  }
  get queues(): string {
    return `${this.base}:queues`;
  }
  /** An Idempotency-Key binding (see idempotency.ts); the scripts build the same name from `base`. */
  idempotency(digest: string): string {
    return `${this.base}:idem:${digest}`;
  }
  get control(): string {
    return `${this.base}:control`;
  }
  /** Operator variables (hash: name -> value, sealed with DROVER_ENV_KEY when set): env of every later run. */
  get variables(): string {
    return `${this.base}:variables`;
  }
  /** Calendars (hash: name -> JSON {dates, updatedAt}): dates schedules referencing one do not fire on. */
  get calendars(): string {
    return `${this.base}:calendars`;
  }
  /** Prefix handed to BullMQ so its keys share our hash tag. */
  get bull(): string {
    return `${this.base}:bull`;
  }
}
