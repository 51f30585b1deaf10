import type { Redis, Result } from 'ioredis';
import { DroverError } from '../errors.js';
import { defineScripts } from '../redis.js';
import { isStreamId, type Keys } from './keys.js';
import { EVENTS_MAX_LEN, lua } from './lua.js';

/** `system`: lines Drover adds itself, such as which script ran. */
export type OutputStream = 'stdout' | 'stderr' | 'system';

export interface LogLine {
  stream: OutputStream;
  line: string;
  /** Epoch ms when the runner read the line. */
  ts: number;
  attempt: number;
  /** No newline followed it: the output's last bytes, or a piece of a line too long to keep whole. */
  partial?: boolean;
}

export interface LogEntry {
  /** Opaque position; pass it back as `cursor` to read what follows. */
  id: string;
  stream: OutputStream;
  line: string;
  ts: string;
  attempt: number;
  /** Present (true) when no newline followed this piece in the output; the next piece of its stream continues it. */
  partial?: true;
}

/** What a job reported about itself (`::drover progress|result`, its files), written with a batch of its output. */
export interface ReportWrite {
  /** 0..100; undefined: not reported. */
  progress?: number | undefined;
  /** Compact JSON text of its result; undefined: not reported. */
  result?: string | undefined;
  /** A job.progress event to record (the runner rate-limits them). */
  event?: { queue: string; data: Record<string, unknown> };
}

const ROLL_DAEMON_LOG = lua('roll-daemon-log');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    droverRollDaemonLog(logKey: string, jobKey: string): Result<number, Context>;
  }
}

/** Job output as a Redis stream per job: stream ids give an exact, gap-free cursor for paging and tailing. */
export class LogStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {
    defineScripts(redis, { droverRollDaemonLog: ROLL_DAEMON_LOG }, 2);
  }

  /** Before a daemon's attempt: keep only the previous attempt's output; the cap starts afresh. */
  async startDaemonAttempt(jobId: string): Promise<void> {
    await this.redis.droverRollDaemonLog(this.keys.log(jobId), this.keys.job(jobId));
  }

  /** A new attempt starts with no progress or result of its own (its predecessor's are not its). */
  async clearReport(jobId: string): Promise<void> {
    await this.redis.hdel(this.keys.job(jobId), 'progress', 'result');
  }

  /** Appends lines and records the running byte count (and what the job reported), in one round trip. */
  async append(jobId: string, lines: LogLine[], outputBytes: number, truncated: boolean, report?: ReportWrite): Promise<void> {
    const key = this.keys.log(jobId);
    const multi = this.redis.multi();
    for (const l of lines) {
      const s = l.stream === 'stdout' ? 'o' : l.stream === 'stderr' ? 'e' : 'x';
      if (l.partial) multi.xadd(key, '*', 's', s, 't', l.ts, 'a', l.attempt, 'p', 1, 'l', l.line);
      else multi.xadd(key, '*', 's', s, 't', l.ts, 'a', l.attempt, 'l', l.line);
    }
    multi.hset(this.keys.job(jobId), 'outputBytes', outputBytes, 'truncated', truncated ? 1 : 0);
    if (report) this.addReport(multi, jobId, report);
    await multi.exec();
  }

  private addReport(multi: ReturnType<Redis['multi']>, jobId: string, report: ReportWrite): void {
    // Stored as JSON text: the final event's script copies them into its data as they are.
    if (report.progress !== undefined) multi.hset(this.keys.job(jobId), 'progress', String(report.progress));
    if (report.result !== undefined) multi.hset(this.keys.job(jobId), 'result', report.result);
    if (report.event) {
      multi.xadd(this.keys.name('events'), 'MAXLEN', '~', EVENTS_MAX_LEN, '*', 't', 'job.progress', 'j', jobId, 'q', report.event.queue, 'd', JSON.stringify(report.event.data));
    }
  }

  async read(jobId: string, cursor: string | undefined, limit: number): Promise<{ items: LogEntry[]; last: string | null }> {
    if (cursor !== undefined && !isStreamId(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
    const start = cursor ? `(${cursor}` : '-';
    const rows = await this.redis.xrange(this.keys.log(jobId), start, '+', 'COUNT', limit);
    const items = rows.map(([id, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      return {
        id,
        stream: f.s === 'e' ? 'stderr' : f.s === 'x' ? 'system' : 'stdout',
        line: f.l ?? '',
        ts: new Date(Number(f.t)).toISOString(),
        attempt: Number(f.a ?? 1),
        ...(f.p === '1' ? { partial: true as const } : {}),
      } satisfies LogEntry;
    });
    return { items, last: items.length > 0 ? items[items.length - 1]!.id : null };
  }
}
