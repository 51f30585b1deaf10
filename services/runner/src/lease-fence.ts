import { performance } from 'node:perf_hooks';
import type { ExecProcess } from './executor.js';

/** Milliseconds on a monotonic clock (performance.now): wall-clock steps must not move a deadline. */
export type MonotonicClock = () => number;

export interface FenceOptions {
  /** RUNNER_LEASE_MS: how long a claim or a renewal holds the job. */
  leaseMs: number;
  /** RUNNER_FENCE_MARGIN_MS: how long before the lease runs out the attempt is killed, room for the kill to finish. */
  marginMs: number;
}

/**
 * Self-fencing of one attempt. The store's lease runs `leaseMs` from the moment the request that set it (the claim,
 * then each renewal) was sent; once the runner cannot renew it, the scheduler takes the job for lost and runs it
 * elsewhere. So the executor's dead man's switch (ExecProcess.setDeadline) is kept at `marginMs` before that: only
 * a renewal the store confirmed moves it, counted from when it was sent, so a request that hangs (a blackholed
 * connection) or a stalled runner lets it fire while the lease still holds, and no retry ever overlaps the attempt.
 */
export class LeaseFence {
  /** When the request that set the lease now in force was sent (monotonic ms). */
  private leaseFrom: number;
  private proc: Pick<ExecProcess, 'setDeadline'> | undefined;
  private gone = false;

  constructor(
    private readonly opts: FenceOptions,
    /** When the claim was sent: the claim set the first lease. */
    claimSentAt: number,
    private readonly clock: MonotonicClock = () => performance.now(),
  ) {
    this.leaseFrom = claimSentAt;
  }

  /** The attempt's process exists: its first deadline counts from the claim, or from a renewal made meanwhile. */
  attach(proc: Pick<ExecProcess, 'setDeadline'>): void {
    if (this.gone) return;
    this.proc = proc;
    this.arm();
  }

  /** A renewal sent at `sentAt` (monotonic ms) was confirmed by the store. */
  renewed(sentAt: number): void {
    // Renewals do not overlap, but a claim may be newer than a renewal that was in flight as it was made.
    this.leaseFrom = Math.max(this.leaseFrom, sentAt);
    this.arm();
  }

  /** The process is gone: a deadline set now could only strike whatever reuses its process group. */
  detach(): void {
    this.gone = true;
    this.proc = undefined;
  }

  /** How long the lease has gone without a confirmed renewal, now. */
  unrenewedMs(): number {
    return Math.round(this.clock() - this.leaseFrom);
  }

  /** Time left before the attempt must be dead: the lease's end less the margin, never below 0. */
  remainingMs(): number {
    return Math.max(0, this.opts.leaseMs - this.opts.marginMs - (this.clock() - this.leaseFrom));
  }

  private arm(): void {
    this.proc?.setDeadline(Math.floor(this.remainingMs()));
  }
}

/** The error of an attempt its fence killed. */
export function fencedError(unrenewedMs: number): string {
  return `fenced: the lease was not renewed for ${unrenewedMs} ms (store unreachable or runner stalled); the attempt was killed before its lease expired`;
}
