import type { Logger } from '@drover/core';

/** One finished attempt, as the runner logs it. */
export interface FinishedEntry {
  jobId: string;
  attempt: number;
  outcome: string;
  exitCode: number | null;
  /** The job's status after the store took the outcome (a retry: queued or delayed). */
  next: string;
}

/**
 * What the runner says about finished jobs. At thousands of jobs a second a line per job is most of a log's
 * volume and a real share of the runner's CPU: a successful attempt is logged at debug, every other outcome still
 * at info (an operator looks for those), and an info line per interval counts them all by outcome.
 */
export class FinishSummary {
  private readonly counts = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
  ) {
    this.timer = setInterval(() => this.flush(), intervalMs).unref();
  }

  record(entry: FinishedEntry): void {
    this.counts.set(entry.outcome, (this.counts.get(entry.outcome) ?? 0) + 1);
    if (entry.outcome === 'succeeded' && entry.next === 'succeeded') this.log.debug(entry, 'job finished');
    else this.log.info(entry, 'job finished');
  }

  /** Logs the counts since the last line, if any. */
  flush(): void {
    if (this.counts.size === 0) return;
    let finished = 0;
    for (const n of this.counts.values()) finished += n;
    this.log.info({ finished, outcomes: Object.fromEntries(this.counts), intervalMs: this.intervalMs }, 'jobs finished');
    this.counts.clear();
  }

  /** Stops the timer; what was counted since the last line is logged now. */
  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
