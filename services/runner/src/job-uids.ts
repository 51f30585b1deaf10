import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import type { UidRange } from '@drover/core';
import { hostLock } from './containment/host-lock.js';

/**
 * Where a runner that can switch users takes its jobs' uids from when neither RUNNER_JOB_UIDS nor RUNNER_JOB_USER
 * is set: far above the uids of people and services (1000 and up), above the container ranges of systemd-nspawn
 * (524288-1879048191) and the subordinate ranges of rootless containers (100000 and up, 65536 per user), below
 * systemd's foreign range (2147352576 and up) and below 2^31 (see MAX_JOB_UID). All runners of a host share it.
 */
export const DEFAULT_JOB_UIDS: Readonly<UidRange> = Object.freeze({ first: 2_000_000_000, last: 2_000_099_999 });

/** A uid this runner holds: no other job of any runner of the host runs as it until it is released. */
export interface JobUidLease {
  readonly uid: number;
  /**
   * Kills whatever the job left under its uid (a process that escaped its group), runs `cleanup` (removing its
   * files), then frees the uid. If either step fails the uid stays out of use for the runner's lifetime, so a
   * later job never meets what the earlier one left.
   */
  release(cleanup?: () => Promise<void>): Promise<void>;
}

/** One uid's claim across the host; `release` gives it up. */
export interface UidLock {
  release(): void;
}

export interface JobUidPoolOptions {
  range: UidRange;
  /** Spreads the runners of one host over the range, so they rarely try the same uid (the lock decides anyway). */
  runnerId: string;
  /** Kills every process that runs as the uid (Executor.killUid). */
  killAll: (uid: number) => Promise<void>;
  /** Claims a uid for this runner; undefined when another process of the host holds it. Default: hostUidLock. */
  lock?: (uid: number) => Promise<UidLock | undefined>;
  /** Told about a uid kept out of use after a failed release. */
  onRetired?: (uid: number, err: unknown) => void;
  /**
   * Keeps one uid locked and cleared ahead of the next job, so a job's start does not wait for the lock and the
   * kill (about a millisecond, most of an idle runner's submit-to-start time). The runner sets it; close() frees it.
   */
  prepareAhead?: boolean;
}

/**
 * Hands every running job a uid of its own from a range, so jobs running side by side cannot read each other's
 * /proc files or job directories, nor signal each other.
 *
 * Uids go round the range, so a uid comes back as late as possible. Before a uid is handed out, and again when
 * its job has ended, every process of that uid is killed: what a job left behind (a process that called setsid,
 * or one that outlived a runner that crashed) never meets the next job given the same uid.
 */
export class JobUidPool {
  /** Uids of this runner: running, being swept, or retired. */
  private readonly held = new Set<number>();
  private readonly size: number;
  private cursor: number;
  private readonly lock: (uid: number) => Promise<UidLock | undefined>;
  private ready: Promise<JobUidLease> | undefined;
  private closed = false;

  constructor(private readonly opts: JobUidPoolOptions) {
    this.size = opts.range.last - opts.range.first + 1;
    this.cursor = createHash('sha256').update(opts.runnerId).digest().readUInt32BE(0) % this.size;
    this.lock = opts.lock ?? hostUidLock;
  }

  get range(): UidRange {
    return this.opts.range;
  }

  /** Uids this runner holds now (running, being cleaned up, or retired). */
  get inUse(): number {
    return this.held.size;
  }

  /** The next free uid, locked for this runner and with no process left running as it. */
  async acquire(): Promise<JobUidLease> {
    if (!this.opts.prepareAhead) return this.take();
    const ready = this.ready;
    this.ready = undefined;
    const lease = (ready && (await ready.catch(() => undefined))) || (await this.take());
    // One prepared at a time: of jobs starting together, only the first finds none pending here.
    if (!this.closed && !this.ready) {
      const next = this.take();
      next.catch(() => undefined); // no uid free now: the next acquire tries itself, and reports it
      this.ready = next;
    }
    return lease;
  }

  /** Frees the uid prepared ahead (the runner stops). */
  async close(): Promise<void> {
    this.closed = true;
    const ready = this.ready;
    this.ready = undefined;
    const lease = await ready?.catch(() => undefined);
    await lease?.release();
  }

  private async take(): Promise<JobUidLease> {
    const { first, last } = this.opts.range;
    for (let tried = 0; tried < this.size; tried++) {
      const uid = first + this.cursor;
      this.cursor = (this.cursor + 1) % this.size;
      if (this.held.has(uid)) continue;
      // Taken before the first await: two jobs starting at once never try the same uid.
      this.held.add(uid);
      let lock: UidLock | undefined;
      try {
        lock = await this.lock(uid);
      } catch (err) {
        this.held.delete(uid);
        throw err;
      }
      if (!lock) {
        this.held.delete(uid);
        continue;
      }
      try {
        await this.opts.killAll(uid);
      } catch (err) {
        lock.release();
        this.held.delete(uid);
        throw new Error(`could not clear uid ${uid} for the job: ${(err as Error).message}`);
      }
      return this.lease(uid, lock);
    }
    throw new Error(
      `no free uid in RUNNER_JOB_UIDS ${first}-${last}: this runner holds ${this.held.size}, other runners of this host the rest`,
    );
  }

  /**
   * Kills what jobs of runners of this host that are gone left running under uids of the range: a runner killed
   * together with its spawner helper and that helper's guard. A uid another live runner holds is left alone.
   * Returns the uids cleared.
   */
  async sweepLeftovers(): Promise<number[]> {
    const { first, last } = this.opts.range;
    const uids = new Set<number>();
    for (const entry of await readdir('/proc').catch(() => [])) {
      if (!/^\d+$/.test(entry)) continue;
      const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
      if (uid >= first && uid <= last && !this.held.has(uid)) uids.add(uid);
    }
    const cleared: number[] = [];
    for (const uid of uids) {
      const lock = await this.lock(uid);
      if (!lock) continue; // a live runner's job
      try {
        await this.opts.killAll(uid);
        cleared.push(uid);
      } finally {
        lock.release();
      }
    }
    return cleared;
  }

  private lease(uid: number, lock: UidLock): JobUidLease {
    let released = false;
    return {
      uid,
      release: async (cleanup) => {
        if (released) return;
        released = true;
        let failure: unknown;
        await this.opts.killAll(uid).catch((err: unknown) => (failure = err));
        // The files go even when the kill failed: root removes them, whatever runs as the uid.
        await cleanup?.().catch((err: unknown) => (failure ??= err));
        if (failure !== undefined) {
          // Held (and locked) for good: something of this job may still run or lie around under this uid.
          this.opts.onRetired?.(uid, failure);
          return;
        }
        lock.release();
        this.held.delete(uid);
      },
    };
  }
}

/** Claims a uid across the host (see hostLock): no two running jobs of any runner of a network namespace share one. */
export function hostUidLock(uid: number): Promise<UidLock | undefined> {
  return hostLock(`job-uid-${uid}`);
}
