import { randomUUID } from 'node:crypto';
import { sealEnvOf, type EnvCipher } from '../env-cipher.js';
import type { Redis, Result } from 'ioredis';
import { DroverError } from '../errors.js';
import { defineScripts } from '../redis.js';
import { isJobId } from '../ids.js';
import { recordFromHash, type AttemptRecord, type JobRecord, type ResourceUsage } from '../model/job-record.js';
import { DEFAULT_PRIORITY, type JobSpec } from '../model/job-spec.js';
import type { JobConstraints } from '../model/placement.js';
import { parseResources, type JobResources } from '../model/resources.js';
import { isTerminal, type JobStatus } from '../model/states.js';
import { Keys } from './keys.js';
import { claimArg, replayOf, type IdempotencyClaim, type Replay } from './idempotency.js';
import * as scripts from './scripts.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    droverCreate(...args: (string | number)[]): Result<string[], Context>;
    droverReleaseParked(...args: (string | number)[]): Result<string[], Context>;
    droverCancelWaiting(...args: (string | number)[]): Result<string[], Context>;
    droverExpireFinished(...args: (string | number)[]): Result<number, Context>;
    droverClaim(...args: (string | number)[]): Result<[number, ...unknown[]], Context>;
    droverSetPid(...args: (string | number)[]): Result<number, Context>;
    droverMarkSlow(...args: (string | number)[]): Result<number, Context>;
    droverFinish(...args: (string | number)[]): Result<[number, string, string?], Context>;
    droverCancel(...args: (string | number)[]): Result<[CancelAction, string, string?], Context>;
    droverPromote(...args: (string | number)[]): Result<string[], Context>;
    droverExpireDue(...args: (string | number)[]): Result<string[], Context>;
    droverPromoteOne(...args: (string | number)[]): Result<string[], Context>;
    droverExpireLeases(...args: (string | number)[]): Result<string[], Context>;
    droverSweepOutbox(...args: (string | number)[]): Result<string[], Context>;
    droverSweepWaiting(...args: (string | number)[]): Result<string[], Context>;
    droverRenew(...args: (string | number)[]): Result<[string[], string[]], Context>;
    droverDiscard(...args: (string | number)[]): Result<number, Context>;
    droverPlaced(...args: (string | number)[]): Result<string[], Context>;
    droverDeleteFinished(...args: (string | number)[]): Result<string[], Context>;
    droverDeleteFinishedBefore(...args: (string | number)[]): Result<string[], Context>;
    droverMarkRetried(...args: (string | number)[]): Result<number, Context>;
  }
}

const COMMANDS: Record<string, string> = {
  droverCreate: scripts.CREATE,
  droverClaim: scripts.CLAIM,
  droverSetPid: scripts.SET_PID,
  droverMarkSlow: scripts.MARK_SLOW,
  droverFinish: scripts.FINISH,
  droverCancel: scripts.CANCEL,
  droverPromote: scripts.PROMOTE,
  droverExpireDue: scripts.EXPIRE_DUE,
  droverPromoteOne: scripts.PROMOTE_ONE,
  droverExpireLeases: scripts.EXPIRE_LEASES,
  droverSweepOutbox: scripts.SWEEP_OUTBOX,
  droverSweepWaiting: scripts.SWEEP_WAITING,
  droverRenew: scripts.RENEW,
  droverDiscard: scripts.DISCARD,
  droverPlaced: scripts.PLACED,
  droverReleaseParked: scripts.RELEASE_PARKED,
  droverCancelWaiting: scripts.CANCEL_WAITING,
  droverExpireFinished: scripts.EXPIRE_FINISHED,
  droverDeleteFinished: scripts.DELETE_FINISHED,
  droverDeleteFinishedBefore: scripts.DELETE_FINISHED_BEFORE,
  droverMarkRetried: scripts.MARK_RETRIED,
};

export interface NewJob {
  id: string;
  spec: JobSpec;
  /** Epoch ms; set for a job that waits in `delayed` until then. */
  runAt?: number;
  /** Epoch ms: its deadline (else `spec.ttlMs` after creation, if set); no attempt starts after it. */
  expiresAt?: number;
  /** For one copy of a job with `replicas`: its index, and the id of copy 0. */
  replica?: { index: number; of: string };
  /** A workflow step, when the workflow limits how many of its steps run at once. */
  workflow?: { id: string; concurrency: number };
  /** W3C traceparent of the span that submitted it: the runner continues that trace. */
  traceparent?: string;
  /** Job ids this one starts after, whatever their outcome: a restart's new copy waits for the old one to stop. */
  afterEnd?: string[];
  /**
   * The names in `dependsOn` are looked at again when what they held ended: jobs of those names that started
   * meanwhile hold this one too (Meproc's deps: a task waits while its deps run, a restarted dep included).
   */
  recheckNames?: boolean;
}

/** What creating a job came to: a new record, or the unfinished job holding the same dedupe key. */
export type Created = { record: JobRecord; duplicate: false } | { record: JobRecord; duplicate: true };

/** The script's view of a new job beyond its spec (see CREATE in scripts.ts). */
export function createMeta(job: NewJob): string {
  const { spec } = job;
  const meta: Record<string, unknown> = {};
  if (spec.dedupeKey) meta.dedupeKey = spec.dedupeKey;
  if (spec.name) meta.name = spec.name;
  if (spec.callbackUrl) meta.callbackUrl = spec.callbackUrl;
  if (job.traceparent) meta.trace = job.traceparent;
  // Kept apart from the spec so the claim reads a short field, not the whole spec; normalized, so equal ones group.
  if (spec.constraints) meta.placement = JSON.stringify(spec.constraints);
  // The deadline: absolute, or ttlMs from the creation (the script's clock).
  if (job.expiresAt !== undefined) meta.expiresAt = job.expiresAt;
  else if (spec.ttlMs !== undefined) meta.ttlMs = spec.ttlMs;
  // Kept apart too, for the scripts that order waiting jobs by it (parked, placement); absent: the default.
  if (spec.priority !== undefined && spec.priority !== DEFAULT_PRIORITY) meta.priority = spec.priority;
  if (job.workflow) {
    meta.workflow = job.workflow.id;
    meta.wfLimit = job.workflow.concurrency;
  }
  if (job.replica) {
    meta.replica = job.replica.index;
    meta.replicaOf = job.replica.of;
  }
  const after = (spec.dependsOn ?? []).filter(isJobId);
  const afterNames = (spec.dependsOn ?? []).filter((d) => !isJobId(d));
  if (after.length > 0) meta.after = after;
  if (afterNames.length > 0) meta.afterNames = afterNames;
  if (job.afterEnd && job.afterEnd.length > 0) meta.afterEnd = job.afterEnd;
  if (job.recheckNames && afterNames.length > 0) meta.recheck = 1;
  return Object.keys(meta).length > 0 ? JSON.stringify(meta) : '';
}

/** What a create may carry beyond its jobs (see JobStore.createOnce). */
export interface CreateOptions {
  idempotency?: IdempotencyClaim;
  /** A workflow's record (its sealed JSON), stored in the same step as its step jobs. */
  workflow?: { id: string; doc: string };
}

/** The answer to an Idempotency-Key that came before with another request (another body or route). */
export function idempotencyKeyReused(): DroverError {
  return new DroverError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with another request (a different body or route); use a new key for a new request');
}

export interface Claim {
  /** The job claimed: the one asked for, or under store order the queue's most urgent waiting one (see CLAIM). */
  jobId: string;
  attempt: number;
  spec: JobSpec;
  /** Output already stored by earlier attempts: the per-job cap covers all attempts together. */
  outputBytes: number;
  /** The queue has a concurrency, rate or pause setting: finishing may let a parked job go. */
  gated: boolean;
  /** The queue's default timeout, for a job that sets none. */
  queueTimeoutMs: number | undefined;
  /** The queue's default resources, for the limits a job sets none of. */
  queueResources: JobResources | undefined;
  /** Which copy this is, for a job with replicas. */
  replica: number;
  /** Epoch ms the job was last queued (submitted, came due, or retried): the start of its queue wait. */
  queuedAt: number | undefined;
  /** W3C traceparent of the submission, when it was traced. */
  traceparent: string | undefined;
}

export type FinishOutcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'lost';

export interface FinishInput {
  id: string;
  runnerId: string;
  attempt: number;
  outcome: FinishOutcome;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  outputBytes: number;
  truncated: boolean;
  retryDelayMs: number;
  /** Epoch ms when the process was spawned; null when it never started. */
  startedAt: number | null;
  usage: ResourceUsage | null;
  /** The job ends with this attempt whatever its retries (a daemon is not restarted): no attempt could go differently. */
  final?: boolean;
}

export type FinishResult =
  | { kind: 'final'; status: JobStatus }
  | { kind: 'retry'; status: 'queued' | 'delayed'; queue: string }
  | { kind: 'stale'; status: string };

export type JobOutcome = Pick<JobRecord, 'status' | 'exitCode' | 'signal' | 'error' | 'truncated'>;

export type CancelAction = 'cancelled' | 'flagged' | 'ended' | 'missing';

/** Declined jobs of one queue with the same constraints, waiting for a runner that satisfies them. */
export interface PlacementGroup {
  group: string;
  queue: string;
  constraints: JobConstraints;
}

export interface JobRef {
  id: string;
  queue: string;
  /** The job's priority when the caller knows it (else publishQueued reads it). */
  priority?: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Job records, indexes and state changes in Redis. All transitions go through the Lua scripts. */
/** What a dependency on a job Redis does not hold answers (also what a restricted token gets for another queue's). */
export function unknownDependency(id: string, field = 'dependsOn'): DroverError {
  return new DroverError('VALIDATION', `${field}: no job ${id}`, [{ field, message: `no job ${id}` }]);
}

/** The job id an unknownDependency error names, or null for any other error. */
export function unknownDependencyOf(err: unknown): string | null {
  if (!(err instanceof DroverError) || err.code !== 'VALIDATION' || !Array.isArray(err.details)) return null;
  const d = err.details[0] as { field?: unknown; message?: unknown } | undefined;
  const m = d?.field === 'dependsOn' && typeof d.message === 'string' ? /^no job (\S+)$/.exec(d.message) : null;
  return m?.[1] ?? null;
}

export class JobStore {
  readonly keys: Keys;

  constructor(
    readonly redis: Redis,
    prefix: string,
    /** Seals env values before they are stored (DROVER_ENV_KEY); without it they are stored as given. */
    readonly envCipher?: EnvCipher,
  ) {
    this.keys = new Keys(prefix);
    defineScripts(redis, COMMANDS);
  }

  /**
   * Persists jobs in one round trip: all of them or none (one script runs atomically). A dependency on an unknown
   * job id is a VALIDATION error and nothing is written. A job whose dedupe key an unfinished job holds is not
   * created: its entry is that job, marked `duplicate`.
   */
  async create(jobs: NewJob[], now = Date.now()): Promise<Created[]> {
    const outcome = await this.createOnce(jobs, {}, now);
    if (outcome.replayed) throw new Error('a create without an idempotency claim was answered as a replay');
    return outcome.created;
  }

  /**
   * `create`, plus what a submission needs to be safe to retry: with `idempotency`, a key seen before creates nothing
   * and answers what it created then (`replayed`), a key that came with another request is IDEMPOTENCY_KEY_REUSED, and
   * a new key is bound to the new jobs in the same atomic step. With `workflow`, its record is stored in that step too.
   */
  async createOnce(jobs: NewJob[], opts: CreateOptions, now = Date.now()): Promise<{ replayed: false; created: Created[] } | ({ replayed: true } & Replay)> {
    if (jobs.length === 0) return { replayed: false, created: [] };
    const options: Record<string, unknown> = {};
    if (opts.idempotency) options.idem = claimArg(opts.idempotency);
    if (opts.workflow) options.wf = opts.workflow;
    const args: (string | number)[] = [this.keys.routing, now, Object.keys(options).length > 0 ? JSON.stringify(options) : ''];
    const specs = jobs.map((j) => JSON.stringify(sealEnvOf(this.envCipher, j.spec)));
    jobs.forEach((j, i) => args.push(j.id, j.spec.queue, specs[i]!, j.runAt ?? '', createMeta(j)));
    const out = await this.redis.droverCreate(...args);
    if (out[0] === 'unknown') throw unknownDependency(out[1] ?? '');
    const seen = replayOf(out);
    if (seen === 'reused') throw idempotencyKeyReused();
    if (seen) return { replayed: true, ...seen };
    return { replayed: false, created: await this.createdFrom(jobs, specs, out, now) };
  }

  private async createdFrom(jobs: NewJob[], specs: string[], out: string[], now: number): Promise<Created[]> {
    const created: (Created | { readBack: string; duplicate: boolean })[] = [];
    for (let i = 0; i < jobs.length; i++) {
      const j = jobs[i]!;
      const status = out[i * 2]!;
      const id = out[i * 2 + 1]!;
      if (status === 'queued' || status === 'delayed') {
        // The same fields the script writes, so the common answer needs no read-back.
        const timing: Record<string, string> = status === 'delayed' ? { status, runAt: String(j.runAt) } : { status, queuedAt: String(now) };
        const replica: Record<string, string> = j.replica ? { replica: String(j.replica.index), replicaOf: j.replica.of } : {};
        const expiresAt = j.expiresAt ?? (j.spec.ttlMs !== undefined ? now + j.spec.ttlMs : undefined);
        const deadline: Record<string, string> = expiresAt !== undefined ? { expiresAt: String(expiresAt) } : {};
        const hash = { id: j.id, queue: j.spec.queue, spec: specs[i]!, attempts: '0', createdAt: String(now), outputBytes: '0', ...timing, ...replica, ...deadline };
        created.push({ record: recordFromHash(hash), duplicate: false });
      } else {
        // Waiting on dependencies, or a duplicate: read back below, all in one round trip.
        created.push({ readBack: id, duplicate: status === 'duplicate' });
      }
    }
    const toRead = created.flatMap((c) => ('readBack' in c ? [c.readBack] : []));
    const read = new Map((toRead.length > 0 ? await this.getMany(toRead) : []).map((r) => [r.id, r]));
    return created.map((c) => {
      if (!('readBack' in c)) return c;
      const record = read.get(c.readBack);
      if (!record) throw new Error(`job ${c.readBack} vanished right after it was created`);
      return { record, duplicate: c.duplicate };
    });
  }

  /** Deletes jobs that still wait (queued or delayed); used when their submission failed and the client is told so. */
  async discard(ids: string[]): Promise<number> {
    return ids.length === 0 ? 0 : this.redis.droverDiscard(this.keys.routing, ...ids);
  }

  /** Removes jobs from the outbox once the broker confirmed their publish. */
  async published(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.redis.zrem(this.keys.outbox, ...ids);
  }

  async get(id: string): Promise<JobRecord | null> {
    if (!isJobId(id)) return null;
    const h = await this.redis.hgetall(this.keys.job(id));
    return h.status ? recordFromHash(h) : null;
  }

  /** The priorities of jobs that set one other than the default (the others are absent), in one round trip. */
  async priorities(ids: string[]): Promise<Map<string, number>> {
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hget(this.keys.job(id), 'priority');
    const rows = (await pipe.exec()) ?? [];
    const out = new Map<string, number>();
    rows.forEach(([err, v], i) => {
      if (err) throw err;
      if (typeof v === 'string' && v !== '') out.set(ids[i]!, Number(v));
    });
    return out;
  }

  /** A job's queue in one small read (for scoping checks), or null when Redis does not hold the job. */
  async queueOf(id: string): Promise<string | null> {
    if (!isJobId(id)) return null;
    return this.redis.hget(this.keys.job(id), 'queue');
  }

  /** Where a job stands, in one small read (no spec): for loops that poll a job, such as following its log. */
  async outcome(id: string): Promise<JobOutcome | null> {
    if (!isJobId(id)) return null;
    const [status, exitCode, signal, error, truncated] = await this.redis.hmget(this.keys.job(id), 'status', 'exitCode', 'signal', 'error', 'truncated');
    if (!status) return null;
    return { status: status as JobStatus, exitCode: exitCode ? Number(exitCode) : null, signal: signal || null, error: error || null, truncated: truncated === '1' };
  }

  /** The stored spec of a job (env values included: for resubmitting, never for answers). */
  async spec(id: string): Promise<JobSpec | null> {
    if (!isJobId(id)) return null;
    const raw = await this.redis.hget(this.keys.job(id), 'spec');
    return raw ? (JSON.parse(raw) as JobSpec) : null;
  }

  async getMany(ids: string[]): Promise<JobRecord[]> {
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.job(id));
    const rows = (await pipe.exec()) ?? [];
    const out: JobRecord[] = [];
    for (const [err, h] of rows) {
      if (err) throw err;
      const hash = h as Record<string, string>;
      if (hash.status) out.push(recordFromHash(hash));
    }
    return out;
  }

  /**
   * The job's attempts, oldest first. The list holds the attempts after which the job went on (or that a lease
   * expiry ended); the attempt that ended the job is the record's own fields, so it is added from there.
   */
  async attempts(id: string): Promise<AttemptRecord[]> {
    const [[listErr, rows], [recErr, rec]] = ((await this.redis.pipeline()
      .lrange(this.keys.attempts(id), 0, -1)
      .hmget(this.keys.job(id), 'status', 'attempts', 'runnerId', 'exitCode', 'signal', 'error', 'startedAt', 'finishedAt')
      .exec()) ?? []) as [[Error | null, string[]], [Error | null, (string | null)[]]];
    if (listErr) throw listErr;
    if (recErr) throw recErr;
    const out = rows.map((r) => {
      const a = JSON.parse(r) as Omit<AttemptRecord, 'startedAt' | 'finishedAt'> & { startedAt: number; finishedAt: number };
      return { ...a, startedAt: new Date(a.startedAt).toISOString(), finishedAt: new Date(a.finishedAt).toISOString() };
    });
    const [status, attempts, runnerId, exitCode, signal, error, startedAt, finishedAt] = rec;
    const last = Number(attempts ?? 0);
    if (status && isTerminal(status as JobStatus) && last > (out[out.length - 1]?.attempt ?? 0) && startedAt && finishedAt) {
      out.push({
        attempt: last, runnerId: runnerId ?? '', status: status as JobStatus,
        exitCode: exitCode ? Number(exitCode) : null, signal: signal || null, error: error || null,
        startedAt: new Date(Number(startedAt)).toISOString(), finishedAt: new Date(Number(finishedAt)).toISOString(),
      });
    }
    return out;
  }

  /** Newest first. The cursor is the last id of the previous page. */
  async list(filter: { queue?: string; status?: JobStatus }, cursor: string | undefined, limit: number): Promise<Page<JobRecord>> {
    if (cursor !== undefined && !isJobId(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
    const key = this.keys.index(filter.queue, filter.status);
    const max = cursor ? `(${cursor}` : '+';
    const ids = await this.redis.zrevrangebylex(key, max, '-', 'LIMIT', 0, limit + 1);
    const more = ids.length > limit;
    const page = ids.slice(0, limit);
    const items = await this.getMany(page);
    return { items, nextCursor: more ? (page[page.length - 1] ?? null) : null };
  }

  /**
   * Claims a queued job for one attempt. `placement` is the runner as encodePlacement wrote it: a job with constraints
   * it does not satisfy (or any job with constraints, without it) is declined into its placement group ({status: 'placement'}).
   */
  /**
   * Claims a job for one attempt. `storeOrder`: the claim is for a delivery of `storeOrder.queue` on a broker that
   * does not order by priority; it takes that queue's most urgent waiting job this runner may run instead of `id`.
   */
  async claim(id: string, runnerId: string, leaseMs: number, now = Date.now(), placement = '', storeOrder?: { queue: string }): Promise<Claim | { status: string }> {
    const r = await this.redis.droverClaim(this.keys.routing, id, runnerId, now, now + leaseMs, randomUUID(), placement, storeOrder ? '1' : '', storeOrder?.queue ?? '');
    if (r[0] !== 1) return { status: String(r[1]) };
    return {
      jobId: typeof r[10] === 'string' && r[10] !== '' ? r[10] : id,
      attempt: Number(r[1]),
      spec: JSON.parse(String(r[2])) as JobSpec,
      outputBytes: Number(r[3]),
      gated: Number(r[4]) === 1,
      queueTimeoutMs: r[5] ? Number(r[5]) : undefined,
      replica: Number(r[6] || 0),
      queuedAt: r[7] ? Number(r[7]) : undefined,
      traceparent: typeof r[8] === 'string' && r[8] !== '' ? r[8] : undefined,
      queueResources: parseResources(typeof r[9] === 'string' ? r[9] : undefined),
    };
  }

  /** The jobs running on one runner now, from the job records (the registry's list lags by up to a heartbeat). */
  async runningOn(runnerId: string): Promise<JobRecord[]> {
    const ids = await this.redis.zrange(this.keys.index(undefined, 'running'), 0, -1);
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hget(this.keys.job(id), 'runnerId');
    const owners = (await pipe.exec()) ?? [];
    const mine = ids.filter((_, i) => owners[i]?.[1] === runnerId);
    return (await this.getMany(mine)).filter((j) => j.status === 'running' && j.runnerId === runnerId);
  }

  /** Lets parked jobs of a queue go as far as its settings allow now; returns their refs, to be published. */
  async releaseParked(queue: string, limit = 500, now = Date.now()): Promise<JobRef[]> {
    const ids = await this.redis.droverReleaseParked(this.keys.routing, queue, now, limit);
    return ids.map((id) => ({ id, queue }));
  }

  /** The unfinished jobs of a name (`name` in the spec), by id. */
  async unfinishedNamed(name: string): Promise<string[]> {
    return this.redis.smembers(this.keys.name('named', name));
  }

  /** Queues holding parked jobs: the scheduler tries to release them every tick (rate windows pass, runners die). */
  async parkedQueues(): Promise<string[]> {
    return this.redis.smembers(this.keys.name('parkedQueues'));
  }

  /** Placement groups holding declined jobs: group -> the queue and constraints its jobs share. */
  async placementGroups(): Promise<PlacementGroup[]> {
    const flat = await this.redis.hgetall(this.keys.name('placements'));
    return Object.entries(flat).map(([group, json]) => ({ group, ...(JSON.parse(json) as Omit<PlacementGroup, 'group'>) }));
  }

  /** Up to `limit` jobs that wait in a placement group, most urgent then oldest first (see PLACED). */
  async placed(group: string, limit: number): Promise<string[]> {
    return this.redis.droverPlaced(this.keys.routing, group, limit);
  }

  /** Jobs made runnable by a dependency ending or a release; popped by the scheduler for publishing. */
  async takeReady(limit: number): Promise<JobRef[]> {
    const items = (await this.redis.lpop(this.keys.name('ready'), limit)) ?? [];
    return items.map((item) => {
      const [id = '', queue = ''] = item.split(' ');
      return { id, queue };
    });
  }

  /** Deletes finished jobs past their retention (age, or count per queue); returns how many. */
  async expireFinished(retentionMs: number, maxPerQueue: number, limit = 1000, now = Date.now(), needArchived = false): Promise<number> {
    return this.redis.droverExpireFinished(this.keys.routing, now - retentionMs, limit, maxPerQueue, needArchived ? 1 : 0);
  }

  /** Deletes the finished ones of these jobs with their output, attempts and index entries; returns the ids deleted. */
  async deleteFinished(ids: string[]): Promise<string[]> {
    return ids.length === 0 ? [] : this.redis.droverDeleteFinished(this.keys.routing, ...ids);
  }

  /**
   * One bounded step of a bulk clean: scans up to `limit` ids of the queue's `status` index below `from` (newest first)
   * and deletes those that finished before `before`. `next` is where the next step starts (null: the index is done).
   */
  async deleteFinishedBefore(queue: string, status: JobStatus, before: number, from: string, limit: number): Promise<{ deleted: string[]; next: string | null }> {
    const [last = '', ...deleted] = await this.redis.droverDeleteFinishedBefore(this.keys.routing, queue, status, before, from, limit);
    return { deleted, next: last === '' ? null : last };
  }

  /**
   * Marks a finished job as run again by `newId`, unless it was already (then false): a bulk retry runs each job
   * once more, however often it is asked.
   */
  async markRetried(id: string, newId: string): Promise<boolean> {
    return (await this.redis.droverMarkRetried(this.keys.routing, id, newId)) === 1;
  }

  /** Undoes markRetried when the new job could not be submitted. */
  async unmarkRetried(id: string): Promise<void> {
    await this.redis.hdel(this.keys.job(id), 'retriedAs');
  }

  /** Which of these jobs were run again already (markRetried). */
  async retried(ids: string[]): Promise<Set<string>> {
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hexists(this.keys.job(id), 'retriedAs');
    const rows = (await pipe.exec()) ?? [];
    return new Set(ids.filter((_, i) => rows[i]?.[1] === 1));
  }

  /** Cancels every job of a queue that has not started (in the given statuses); returns how many. */
  async cancelWaiting(queue: string, statuses: JobStatus[], now = Date.now()): Promise<number> {
    return (await this.cancelWaitingIds(queue, statuses, 0, now)).count;
  }

  /** cancelWaiting, answering also the ids of the first `keep` it cancelled (in steps of 500: never all in memory). */
  async cancelWaitingIds(queue: string, statuses: JobStatus[], keep: number, now = Date.now()): Promise<{ count: number; ids: string[] }> {
    const ids: string[] = [];
    let count = 0;
    for (;;) {
      const step = await this.redis.droverCancelWaiting(this.keys.routing, queue, now, 500, statuses.join(','));
      count += step.length;
      ids.push(...step.slice(0, Math.max(0, keep - ids.length)));
      if (step.length < 500) return { count, ids };
    }
  }

  async setPid(id: string, runnerId: string, attempt: number, pid: number, startedAt: number): Promise<boolean> {
    return (await this.redis.droverSetPid(this.keys.routing, id, runnerId, attempt, pid, startedAt)) === 1;
  }

  /** The attempt has run past its alertAfterMs: job.slow, once, if the attempt still owns the job. */
  async markSlow(id: string, runnerId: string, attempt: number, runningMs: number, alertAfterMs: number, now = Date.now()): Promise<boolean> {
    return (await this.redis.droverMarkSlow(this.keys.routing, id, runnerId, attempt, now, runningMs, alertAfterMs)) === 1;
  }

  async finish(f: FinishInput, now = Date.now()): Promise<FinishResult> {
    const r = await this.redis.droverFinish(
      this.keys.routing, f.id, f.runnerId, f.attempt, now, f.outcome,
      f.exitCode ?? '', f.signal ?? '', f.error ?? '', f.outputBytes, f.truncated ? 1 : 0, f.retryDelayMs, f.startedAt ?? '', f.usage ? JSON.stringify(f.usage) : '',
      f.final ? 1 : 0,
    );
    if (r[0] === 1) return { kind: 'final', status: r[1] as JobStatus };
    if (r[0] === 2) return { kind: 'retry', status: r[1] as 'queued' | 'delayed', queue: r[2] ?? '' };
    return { kind: 'stale', status: r[1] };
  }

  /** Cancelled at once (queued/delayed), flagged for its runner (running), or already ended/missing. */
  async cancel(id: string, now = Date.now()): Promise<{ action: CancelAction; status: string }> {
    const [action, status] = await this.redis.droverCancel(this.keys.routing, id, now);
    return { action, status };
  }

  /**
   * Cancels several jobs at once (the scripts share the connection instead of waiting in turn) and tells the
   * runners to stop the running ones. Returns which were cancelled outright and which were running (flagged).
   */
  async cancelMany(ids: string[], now = Date.now()): Promise<{ cancelled: string[]; flagged: string[] }> {
    const results = await Promise.all(ids.map((id) => this.cancel(id, now)));
    const cancelled = ids.filter((_, i) => results[i]!.action === 'cancelled');
    const flagged = ids.filter((_, i) => results[i]!.action === 'flagged');
    await this.signalCancel(flagged);
    return { cancelled, flagged };
  }

  /** Tells the runners to stop these jobs' processes (their records are flagged already): one pipeline. */
  async signalCancel(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.publish(this.keys.control, JSON.stringify({ type: 'cancel', jobId: id }));
    await pipe.exec();
  }

  async promoteDue(limit: number, now = Date.now()): Promise<JobRef[]> {
    return pairs(await this.redis.droverPromote(this.keys.routing, now, limit));
  }

  /**
   * Starts a delayed job now: queued and in the outbox, to be published (publishQueued). Otherwise the status it has
   * ('missing' for none), unchanged.
   */
  async promote(id: string, now = Date.now()): Promise<{ promoted: JobRef } | { status: string }> {
    if (!isJobId(id)) return { status: 'missing' };
    const [result = 'missing', queue] = await this.redis.droverPromoteOne(this.keys.routing, id, now);
    return result === 'promoted' && queue !== undefined ? { promoted: { id, queue } } : { status: result };
  }

  /** Jobs past their deadline that nobody claimed end expired (see EXPIRE_DUE); returns them. */
  async expireDue(limit: number, now = Date.now()): Promise<JobRef[]> {
    return pairs(await this.redis.droverExpireDue(this.keys.routing, now, limit));
  }

  async expireLeases(limit: number, now = Date.now()): Promise<(JobRef & { status: string })[]> {
    const flat = await this.redis.droverExpireLeases(this.keys.routing, now, limit);
    const out: (JobRef & { status: string })[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) out.push({ id: flat[i]!, queue: flat[i + 1]!, status: flat[i + 2]! });
    return out;
  }

  async sweepOutbox(staleBefore: number, limit: number, now = Date.now()): Promise<JobRef[]> {
    return pairs(await this.redis.droverSweepOutbox(this.keys.routing, now, staleBefore, limit));
  }

  /** Queues with jobs in their waiting set (store order). */
  async queuesWithWaiting(): Promise<string[]> {
    const queues = await this.redis.smembers(this.keys.queues);
    const pipe = this.redis.pipeline();
    for (const q of queues) pipe.zcard(this.keys.name('queueWaiting', q));
    const rows = (await pipe.exec()) ?? [];
    return queues.filter((_q, i) => Number(rows[i]?.[1] ?? 0) > 0);
  }

  /**
   * Jobs of `queue` listed as waiting since before `waitedBefore` whose publish the broker confirmed
   * (sweep-waiting.lua): under store order, a Redis failover that lost a claim leaves one without a message.
   */
  async sweepWaiting(queue: string, waitedBefore: number, limit: number): Promise<JobRef[]> {
    const ids = await this.redis.droverSweepWaiting(this.keys.routing, waitedBefore, limit, queue);
    return ids.map((id) => ({ id, queue }));
  }

  async renewLeases(runnerId: string, held: { id: string; attempt: number }[], leaseMs: number, now = Date.now()) {
    if (held.length === 0) return { lost: [] as string[], cancel: [] as string[] };
    const args: (string | number)[] = [this.keys.routing, runnerId, now + leaseMs];
    for (const h of held) args.push(h.id, h.attempt);
    const [lost, cancel] = await this.redis.droverRenew(...args);
    return { lost, cancel };
  }
}

function pairs(flat: string[]): JobRef[] {
  const out: JobRef[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i]!, queue: flat[i + 1]! });
  return out;
}
