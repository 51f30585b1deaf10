import { EventGroupReader, coerceError, eventFromEntry, isTerminal, type ArchiveStore, type EventStore, type JobStore, type LogEntry, type LogStore, type Logger, type JobStatus } from '@drover/core';

const GROUP = 'archive';
const BATCH = 200;
/** A replica's unacknowledged events are taken over after this; a slow batch taken over twice is harmless (primary key). */
const CLAIM_IDLE_MS = 10_000;

/**
 * Archives every finished job into PostgreSQL: record with attempt history, and output. Job-end events are read
 * through a consumer group on the events stream, written in one transaction per batch (a job already there is left
 * alone), then marked `archived` in Redis (retention deletes only archived jobs) and acknowledged. A scheduler
 * that dies mid-batch leaves its events unacknowledged: it reads them again, or another replica takes them over,
 * and the primary key makes the second write a no-op, so nothing is lost or doubled.
 */
export class Archiver {
  private readonly reader: EventGroupReader;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly events: EventStore,
    private readonly jobs: JobStore,
    private readonly logs: LogStore,
    private readonly archive: ArchiveStore,
    consumer: string,
    private readonly log: Logger,
  ) {
    // From the start of the stream: jobs that ended before the first archiver ran are archived too.
    this.reader = new EventGroupReader(events, { group: GROUP, consumer, startAt: '0', claimIdleMs: CLAIM_IDLE_MS, batch: BATCH });
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const n = await this.step().catch((err: unknown) => {
          this.log.warn({ err: coerceError(err) }, 'archiving failed; retrying');
          return -1;
        });
        if (n <= 0) await new Promise((r) => setTimeout(r, n < 0 ? 1000 : 100));
      }
    })();
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** One batch; returns how many events it handled. */
  async step(now = Date.now()): Promise<number> {
    const entries = await this.reader.next(now);
    if (entries.length === 0) return 0;
    const ended = [...new Set(entries.map(([id, f]) => eventFromEntry(id, f)).filter((e) => e.jobId && e.type.startsWith('job.') && isTerminal(e.type.slice(4) as JobStatus)).map((e) => e.jobId!))];
    // A daemon stop can race its event: only jobs still terminal are kept (getMany skips those already gone).
    const jobs = (await this.jobs.getMany(ended)).filter((j) => isTerminal(j.status));
    // Every job's output and attempts read at once: the commands share the connection instead of waiting in turn.
    const batch: Parameters<ArchiveStore['write']>[0] = await Promise.all(
      jobs.map(async (job) => {
        const [output, attemptHistory] = await Promise.all([this.allOutput(job.id), this.jobs.attempts(job.id)]);
        return { job: { ...job, attemptHistory }, output };
      }),
    );
    await this.archive.write(batch);
    const pipe = this.events.redis.pipeline();
    for (const { job } of batch) pipe.hset(this.jobs.keys.job(job.id), 'archived', 1);
    pipe.xack(this.events.key, GROUP, ...entries.map((e) => e[0]));
    await pipe.exec();
    return entries.length;
  }

  private async allOutput(id: string): Promise<LogEntry[]> {
    const output: LogEntry[] = [];
    for (let cursor: string | undefined; ; ) {
      const page = await this.logs.read(id, cursor, 5000);
      output.push(...page.items);
      if (page.items.length < 5000) return output;
      cursor = page.last ?? undefined;
    }
  }
}

