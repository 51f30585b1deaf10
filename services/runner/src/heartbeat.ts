import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { VERSION, coerceError, type JobResources, type JobStore, type Logger } from '@drover/core';

/** The part of the runner a heartbeat reads and acts on. */
export interface HeartbeatSubject {
  readonly id: string;
  readonly state: string;
  readonly startedAt: number;
  readonly running: ReadonlyMap<string, { id: string; attempt: number }>;
  /** How jobs' processes are held together (the executor's containment mode). */
  readonly containment: string;
  stopJobs(ids: string[], reason: 'cancel' | 'lease_lost'): void;
  /** The store confirmed these jobs' leases, renewed by a request sent at `sentAt` (performance.now() ms). */
  leasesRenewed(ids: string[], sentAt: number): void;
  /** What operators asked for (`draining` or nothing), read on every beat in case a control message was missed. */
  applyDesired(desired: string | null): void;
}

export interface HeartbeatOptions {
  leaseMs: number;
  /** RUNNER_FENCE_MARGIN_MS: jobs are fenced at lease − margin after a renewal, so beats come thrice in that time. */
  fenceMarginMs?: number;
  host: string;
  /** Placement: its addresses and labels (RUNNER_LABELS plus host and address), for the registry. */
  addresses: readonly string[];
  labels: Readonly<Record<string, string>>;
  queues: string[];
  concurrency: number;
  executor: string;
  /** RUNNER_MAX_JOB_*: in the registry, so an operator sees which runners fit a big job. */
  maxJobResources?: JobResources;
}

const LOOP_RESOLUTION_MS = 10;

/** The histogram records each sampling interval whole (an idle loop reads 10 ms): report only the lateness. */
const lateness = (ns: number): string => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS).toFixed(2);

/**
 * Every leaseMs/3: renews the leases of running jobs (one script call for all of them), stops jobs this runner
 * no longer owns or that were asked to cancel, and refreshes the runner's entry in the registry. Each confirmed
 * renewal is reported with the time its request was sent, which the jobs' fences count from (lease-fence.ts): a
 * renewal that fails or hangs reports nothing, and beats never overlap, so a hung one holds the next ones back.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | undefined;
  /** Event-loop delay since the last beat: a stalled loop delays heartbeats, output and acks alike. */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });

  constructor(
    private readonly runner: HeartbeatSubject,
    private readonly store: JobStore,
    private readonly log: Logger,
    private readonly opts: HeartbeatOptions,
  ) {}

  private get registryKey(): string {
    return this.store.keys.runner(this.runner.id);
  }

  async start(): Promise<void> {
    this.loopDelay.enable();
    await this.beat();
    // Three beats before a job's fence (lease − margin) comes due: two late or lost renewals in a row are survived,
    // whatever the lease. Beating at lease/3 alone would leave a short lease no room at all.
    const every = Math.max(100, Math.floor((this.opts.leaseMs - (this.opts.fenceMarginMs ?? 0)) / 3));
    this.timer = setInterval(() => void this.beat(), every);
  }

  /** One beat; overlapping calls share the beat in progress. */
  beat(): Promise<void> {
    this.beating ??= this.doBeat().finally(() => (this.beating = undefined));
    return this.beating;
  }

  private async doBeat(): Promise<void> {
    const now = Date.now();
    // The lease renewed below runs from `now`; the fences count from the same instant, on the monotonic clock.
    const sentAt = performance.now();
    try {
      const held = [...this.runner.running.values()].map((e) => ({ id: e.id, attempt: e.attempt }));
      const { lost, cancel } = await this.store.renewLeases(this.runner.id, held, this.opts.leaseMs, now);
      const gone = new Set(lost);
      if (held.length > 0) this.runner.leasesRenewed(held.map((h) => h.id).filter((id) => !gone.has(id)), sentAt);
      if (lost.length > 0) this.runner.stopJobs(lost, 'lease_lost');
      if (cancel.length > 0) this.runner.stopJobs(cancel, 'cancel');
      const ttl = this.opts.leaseMs * 2;
      const [, desired] = (await this.store.redis
        .multi()
        .hset(this.registryKey, {
          id: this.runner.id,
          host: this.opts.host,
          addresses: this.opts.addresses.join(','),
          labels: JSON.stringify(this.opts.labels),
          pid: process.pid,
          queues: this.opts.queues.join(','),
          concurrency: this.opts.concurrency,
          running: held.map((h) => h.id).join(','),
          state: this.runner.state,
          startedAt: this.runner.startedAt,
          heartbeatAt: now,
          loopDelayP99Ms: lateness(this.loopDelay.percentile(99)),
          loopDelayMaxMs: lateness(this.loopDelay.max),
          version: VERSION,
          executor: this.opts.executor,
          maxJobResources: JSON.stringify(this.opts.maxJobResources ?? {}),
          containment: this.runner.containment,
        })
        .get(this.store.keys.runnerDesired(this.runner.id))
        .pexpire(this.registryKey, ttl)
        .zadd(this.store.keys.runners, now, this.runner.id)
        .exec()) ?? [];
      this.loopDelay.reset();
      this.runner.applyDesired((desired?.[1] as string | null) ?? null);
    } catch (err) {
      this.log.warn({ err: coerceError(err) }, 'heartbeat failed');
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.loopDelay.disable();
    await this.beating;
    await this.store.redis.multi().del(this.registryKey).zrem(this.store.keys.runners, this.runner.id).exec();
  }
}
