import { coerceError, satisfies, type JobConstraints, type JobStore, type Logger, type RunnerPlacement } from '@drover/core';

/** What the puller needs of its runner. */
export interface PlacementHost {
  /** True while the runner takes new jobs (not draining, not closing). */
  accepting(): boolean;
  /**
   * Waits for a free slot (ahead of broker deliveries), claims the job and, when that succeeds, runs it in the
   * background. Resolves with 'claimed', 'stopped' (the runner stopped taking jobs meanwhile) or the status the claim
   * found instead ('placement': the store declined it after all).
   */
  takePlaced(jobId: string, queue: string): Promise<string>;
}

/** A runner declined jobs of this group (the control message the claim script publishes), or a group of the store. */
export interface PlacementNotice {
  group: string;
  queue: string;
  constraints: JobConstraints;
}

/** How many of a group's oldest jobs are looked at per take: runners taking from one group rarely race for one job. */
const PEEK = 8;

/**
 * Takes jobs that other runners declined (they do not satisfy the jobs' constraints) and this one satisfies. Told at
 * once by a control message when a runner declines one; looks at the store's groups on start, on resume and every
 * scan period, for notices it missed and for jobs that waited while no runner satisfied them. With no group that
 * concerns it, it costs one small read per scan period and nothing per job.
 */
export class PlacementPuller {
  /** Groups this runner satisfies that may hold jobs: group -> queue. */
  private readonly pending = new Map<string, string>();
  private pulling: Promise<void> | undefined;
  private again = false;
  private scanning: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: JobStore,
    private readonly me: RunnerPlacement,
    /** Whether this runner serves a queue (RUNNER_QUEUES). */
    private readonly serves: (queue: string) => boolean,
    private readonly host: PlacementHost,
    private readonly log: Logger,
    private readonly scanMs: number,
  ) {}

  async start(): Promise<void> {
    await this.scan();
    this.timer = setInterval(() => void this.scan(), this.scanMs);
  }

  /**
   * Stops looking. A take waiting for a slot is not waited for: it gets one as running jobs end, finds the runner no
   * longer taking jobs and gives it back without claiming.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.pending.clear();
    await this.scanning;
  }

  /** A runner declined a job of this group (a control message: checked, whoever could publish it). */
  notice(n: Partial<PlacementNotice>): void {
    if (this.stopped || typeof n.group !== 'string' || typeof n.queue !== 'string' || typeof n.constraints !== 'object' || n.constraints === null) return;
    if (!this.concerns(n as PlacementNotice)) return;
    this.pending.set(n.group, n.queue);
    this.kick();
  }

  /** Reads the store's groups; those this runner satisfies are taken from. */
  scan(): Promise<void> {
    this.scanning ??= (async () => {
      try {
        for (const g of await this.store.placementGroups()) if (this.concerns(g)) this.pending.set(g.group, g.queue);
        this.kick();
      } catch (err) {
        this.log.warn({ err: coerceError(err) }, 'reading the placement groups failed; trying again on the next scan');
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private concerns(n: PlacementNotice): boolean {
    return this.serves(n.queue) && satisfies(n.constraints, this.me);
  }

  /** Takes from the pending groups unless it does already (then once more after that). */
  private kick(): void {
    if (this.stopped || this.pending.size === 0 || !this.host.accepting()) return;
    if (this.pulling) {
      this.again = true;
      return;
    }
    this.pulling = this.pull().finally(() => {
      this.pulling = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** One job at a time, each in a slot of its own: a group left empty is forgotten until it is named again. */
  private async pull(): Promise<void> {
    while (!this.stopped && this.pending.size > 0 && this.host.accepting()) {
      const [group, queue] = this.pending.entries().next().value!;
      let ids: string[];
      try {
        ids = await this.store.placed(group, PEEK);
      } catch (err) {
        this.log.warn({ err: coerceError(err), group }, 'reading a placement group failed; trying again on the next scan');
        return;
      }
      if (ids.length === 0) {
        this.pending.delete(group);
        continue;
      }
      const id = ids[Math.floor(Math.random() * ids.length)]!;
      const outcome = await this.host.takePlaced(id, queue).catch((err: unknown) => {
        this.log.warn({ err: coerceError(err), jobId: id }, 'taking a declined job failed; trying again on the next scan');
        return 'error';
      });
      if (outcome === 'error' || outcome === 'stopped') return;
      if (outcome === 'placement') {
        // The claim script and `satisfies` disagree: leave the group, or this would take and decline it without end.
        this.log.error({ jobId: id, group }, 'the store declined a job whose constraints this runner satisfies by its own reckoning');
        this.pending.delete(group);
      }
    }
  }
}
