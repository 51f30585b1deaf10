import { StringDecoder } from 'node:string_decoder';
import type { LogLine, LogStore, ReportWrite } from '@drover/core';
import type { OutputStreamName } from './executor.js';
import { parseReportLine, PROGRESS_EVENT_INTERVAL_MS, REPORT_PREFIX, RESULT_MAX_BYTES, type parseResult } from './job-report.js';

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
  /** A piece of an over-long line was stored: what follows on that stream continues it, it does not start a line. */
  private readonly midLine = { stdout: false, stderr: false };
  /** What the job reported (`::drover` lines, its files); written with the next batch when `reportDirty`. */
  private progress: number | undefined;
  private result: string | undefined;
  private reportDirty = false;
  private closed = false;
  private eventProgress: number | undefined;
  private eventAt = 0;
  private eventTimer: NodeJS.Timeout | undefined;
  bytes: number;
  truncated = false;

  constructor(
    private readonly logs: LogStore,
    private readonly jobId: string,
    private readonly attempt: number,
    private readonly capBytes: number,
    alreadyStored: number,
    private readonly onError: (err: unknown) => void,
    /** The job's queue, for its job.progress events. */
    private readonly queue = '',
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
    for (const line of parts) {
      // Only a prefix test per line: output with no report costs nothing more. Report lines stay in the output.
      this.pending.push({ stream, line, ts, attempt: this.attempt });
      if (stream === 'stdout' && line.startsWith(REPORT_PREFIX) && !this.midLine.stdout) this.reportLine(line);
      this.midLine[stream] = false;
    }
    if (this.partial[stream].length > MAX_LINE_BYTES) {
      // No newline yet: marked, so a reader can join the pieces again (drover run prints them as they came).
      this.pending.push({ stream, line: this.partial[stream], ts, attempt: this.attempt, partial: true });
      if (stream === 'stdout' && this.partial.stdout.startsWith(REPORT_PREFIX) && !this.midLine.stdout) {
        this.note(`a ::drover line over ${MAX_LINE_BYTES} bytes was ignored (a result may have at most ${RESULT_MAX_BYTES})`);
      }
      this.partial[stream] = '';
      this.midLine[stream] = true;
    }
    if (this.pending.length >= FLUSH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  private reportLine(line: string): void {
    const r = parseReportLine(line);
    if (r === null) return;
    if ('progress' in r) {
      // A bad value (not a number from 0 to 100) is ignored: progress is a hint, not worth failing a job for.
      if (r.progress !== undefined) this.setProgress(r.progress);
    } else {
      this.setResult(r.result);
    }
  }

  /** The job's progress now (0..100). Its job.progress event waits while one was written less than a second ago. */
  setProgress(value: number): void {
    if (value === this.progress || this.closed) return;
    this.progress = value;
    this.reportDirty = true;
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  /** The job's result (its JSON text), or the reason one was refused (then a note in the output, nothing else). */
  setResult(r: ReturnType<typeof parseResult>): void {
    if (this.closed) return;
    if ('error' in r) {
      this.note(r.error);
      return;
    }
    this.result = r.json;
    this.reportDirty = true;
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  /** A line from Drover itself (which script ran, say): stored in order with the output, counted in the cap. */
  note(line: string): void {
    if (this.bytes + line.length > this.capBytes) return;
    this.bytes += line.length;
    this.pending.push({ stream: 'system', line, ts: Date.now(), attempt: this.attempt });
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  /** Writes what is pending; flushes are chained so lines land in order. */
  private flush(last = false): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0 && !this.reportDirty && !(last && this.progressEventDue(true))) return this.flushing;
    const batch = this.pending;
    this.pending = [];
    const bytes = this.bytes;
    const truncated = this.truncated;
    const report = this.takeReport(last);
    this.flushing = this.flushing.then(() => this.logs.append(this.jobId, batch, bytes, truncated, report).catch(this.onError));
    return this.flushing;
  }

  private progressEventDue(last: boolean): boolean {
    return this.progress !== undefined && this.progress !== this.eventProgress && (last || Date.now() - this.eventAt >= PROGRESS_EVENT_INTERVAL_MS);
  }

  /** What to write of the job's report with this batch: its fields, and a job.progress event unless one is too recent. */
  private takeReport(last: boolean): ReportWrite | undefined {
    const dirty = this.reportDirty;
    this.reportDirty = false;
    let event: ReportWrite['event'];
    if (this.progressEventDue(last)) {
      this.eventProgress = this.progress;
      this.eventAt = Date.now();
      event = { queue: this.queue, data: { attempt: this.attempt, progress: this.progress } };
    } else if (this.progress !== this.eventProgress && !last) {
      // Rate-limited: the event for the latest value follows when the interval is over (or at the end).
      this.eventTimer ??= setTimeout(() => {
        this.eventTimer = undefined;
        this.reportDirty = true;
        void this.flush();
      }, Math.max(0, this.eventAt + PROGRESS_EVENT_INTERVAL_MS - Date.now()));
    }
    if (!dirty && !event) return undefined;
    return { ...(dirty ? { progress: this.progress, result: this.result } : {}), ...(event ? { event } : {}) };
  }

  /** Stores unterminated last lines and waits until everything is written. */
  async close(): Promise<void> {
    const ts = Date.now();
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.partial[stream] + this.decoders[stream].end();
      if (rest) this.pending.push({ stream, line: rest, ts, attempt: this.attempt, partial: true });
      this.partial[stream] = '';
    }
    clearTimeout(this.eventTimer);
    this.eventTimer = undefined;
    this.closed = true;
    await this.flush(true);
  }
}
