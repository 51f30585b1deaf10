import { StringDecoder } from 'node:string_decoder';
import type { LogLine, LogStore } from '@drover/core';
import type { OutputStreamName } from './executor.js';

/** A line longer than this is stored in pieces, so one endless line cannot grow the buffer. */
const MAX_LINE_BYTES = 64 * 1024;
const FLUSH_INTERVAL_MS = 100;
const FLUSH_LINES = 500;

/**
 * Turns a job's output chunks into timestamped lines and writes them to the store in batches, while the job runs.
 * The cap bounds stored bytes and this process's memory alike: bytes past it are counted as dropped, not kept.
 */
export class OutputCollector {
  private pending: LogLine[] = [];
  private readonly partial = { stdout: '', stderr: '' };
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  bytes: number;
  truncated = false;

  constructor(
    private readonly logs: LogStore,
    private readonly jobId: string,
    private readonly attempt: number,
    private readonly capBytes: number,
    alreadyStored: number,
    private readonly onError: (err: unknown) => void,
  ) {
    this.bytes = alreadyStored;
  }

  write(stream: OutputStreamName, chunk: Buffer): void {
    const room = this.capBytes - this.bytes;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    let data = chunk;
    if (chunk.length > room) {
      data = chunk.subarray(0, room);
      this.truncated = true;
    }
    this.bytes += data.length;
    const text = this.partial[stream] + this.decoders[stream].write(data);
    const parts = text.split('\n');
    this.partial[stream] = parts.pop() ?? '';
    const ts = Date.now();
    for (const line of parts) this.pending.push({ stream, line, ts, attempt: this.attempt });
    if (this.partial[stream].length > MAX_LINE_BYTES) {
      // No newline yet: marked, so a reader can join the pieces again (drover run prints them as they came).
      this.pending.push({ stream, line: this.partial[stream], ts, attempt: this.attempt, partial: true });
      this.partial[stream] = '';
    }
    if (this.pending.length >= FLUSH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  /** A line from Drover itself (which script ran, say): stored in order with the output, counted in the cap. */
  note(line: string): void {
    if (this.bytes + line.length > this.capBytes) return;
    this.bytes += line.length;
    this.pending.push({ stream: 'system', line, ts: Date.now(), attempt: this.attempt });
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  /** Writes what is pending; flushes are chained so lines land in order. */
  private flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return this.flushing;
    const batch = this.pending;
    this.pending = [];
    const bytes = this.bytes;
    const truncated = this.truncated;
    this.flushing = this.flushing.then(() => this.logs.append(this.jobId, batch, bytes, truncated).catch(this.onError));
    return this.flushing;
  }

  /** Stores unterminated last lines and waits until everything is written. */
  async close(): Promise<void> {
    const ts = Date.now();
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.partial[stream] + this.decoders[stream].end();
      if (rest) this.pending.push({ stream, line: rest, ts, attempt: this.attempt, partial: true });
      this.partial[stream] = '';
    }
    await this.flush();
  }
}
