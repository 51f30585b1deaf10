import type { Redis } from 'ioredis';
import { DroverError } from '../errors.js';
import type { Keys } from './keys.js';

export type OutputStream = 'stdout' | 'stderr';

export interface LogLine {
  stream: OutputStream;
  line: string;
  /** Epoch ms when the runner read the line. */
  ts: number;
  attempt: number;
}

export interface LogEntry {
  /** Opaque position; pass it back as `cursor` to read what follows. */
  id: string;
  stream: OutputStream;
  line: string;
  ts: string;
  attempt: number;
}

const CURSOR_RE = /^\d{1,20}-\d{1,20}$/;

/** Job output as a Redis stream per job: stream ids give an exact, gap-free cursor for paging and tailing. */
export class LogStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Appends lines and records the running byte count, in one round trip. */
  async append(jobId: string, lines: LogLine[], outputBytes: number, truncated: boolean): Promise<void> {
    const key = this.keys.log(jobId);
    const multi = this.redis.multi();
    for (const l of lines) {
      multi.xadd(key, '*', 's', l.stream === 'stdout' ? 'o' : 'e', 't', l.ts, 'a', l.attempt, 'l', l.line);
    }
    multi.hset(this.keys.job(jobId), 'outputBytes', outputBytes, 'truncated', truncated ? 1 : 0);
    await multi.exec();
  }

  async read(jobId: string, cursor: string | undefined, limit: number): Promise<{ items: LogEntry[]; last: string | null }> {
    if (cursor !== undefined && !CURSOR_RE.test(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
    const start = cursor ? `(${cursor}` : '-';
    const rows = await this.redis.xrange(this.keys.log(jobId), start, '+', 'COUNT', limit);
    const items = rows.map(([id, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      return {
        id,
        stream: f.s === 'e' ? 'stderr' : 'stdout',
        line: f.l ?? '',
        ts: new Date(Number(f.t)).toISOString(),
        attempt: Number(f.a ?? 1),
      } satisfies LogEntry;
    });
    return { items, last: items.length > 0 ? items[items.length - 1]!.id : null };
  }
}
