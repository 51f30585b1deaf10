import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  EnvCipher, EventStore, JobStore, LogStore, VariableStore, checkRedisDurability, publishQueued, coerceError, loadPolicy, policyViolation, within, type CommandPolicy, connectRedis, createRedis, createTransport, logBrokerEvents,
  DroverMetrics, encodePlacement, parseQueueSelection, runnerPlacement, type RunnerPlacement, type QueueSelection, type Claim, type Consumer, type DroverConfig, type TransportConfig, type JobMessage, type Logger, type Transport,
} from '@drover/core';
import type { Redis } from 'ioredis';
import { ChildProcessExecutor, type ExecRequest, type Executor } from './executor.js';
import { DEFAULT_SPAWNER_PATH, SpawnerExecutor } from './spawner-executor.js';
import { RunnerCgroups } from './containment/cgroups.js';
import { FinishSummary } from './finish-summary.js';
import { Heartbeat } from './heartbeat.js';
import { chooseJobUser, type JobUserChoice } from './identity.js';
import { dropKeptJobDirs } from './job-dirs.js';
import { JobExecution } from './job-execution.js';
import { LeaseFence } from './lease-fence.js';
import { JobUidPool } from './job-uids.js';
import { Slots } from './slots.js';
import { untilStored } from './store-retry.js';
import { CoyotesListReader } from './coyotes-list.js';
import { JobTelemetry } from './job-telemetry.js';
import { OperatorEnv } from './operator-env.js';
import { QueueWatcher } from './queue-watcher.js';
import { PlacementPuller, type PlacementNotice } from './placement-puller.js';

/** Longest wait for one shutdown step that talks to Redis or the broker. */
const CLOSE_STEP_MS = 5000;

/** Jobs still running after this long get their pid written to the record. */
const PID_REPORT_DELAY_MS = 25;

/** The runner's lifecycle, one value at a time. */
export type RunnerState = 'starting' | 'running' | 'draining' | 'stopped';

export interface RunnerOptions {
  config: TransportConfig & Pick<DroverConfig, 'killGraceMs' | 'runner' | 'policyFile'> & Partial<Pick<DroverConfig, 'compat' | 'scripts' | 'envKey' | 'faults'>>;
  logger: Logger;
  /** The runner's environment, for the variables jobs may inherit. Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  executor?: Executor;
  /** The process's metrics registry (shared by the services of `drover start`); default: a private one. */
  metrics?: DroverMetrics;
  /** Where placement takes the runner to be; default: this machine's host name and addresses (tests run two hosts in one process). */
  host?: { name: string; addresses: string[] };
}

/** Consumes queues, claims each job once, runs it, records the result; drains on close. */
export class Runner {
  state: RunnerState = 'starting';
  readonly id: string;
  readonly startedAt = Date.now();
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly store: JobStore;
  private readonly logs: LogStore;
  private readonly events: EventStore;
  private readonly transport: Transport;
  private readonly executor: Executor;
  private readonly slots: Slots;
  private readonly heartbeat: Heartbeat;
  private consumer: Consumer | undefined;
  /** RUNNER_QUEUES, parsed: names consumed from the start, patterns watched for new queues. */
  private readonly selection: QueueSelection;
  private queueWatcher: QueueWatcher | undefined;
  private listReader: CoyotesListReader | undefined;
  private listRedis: Redis | undefined;
  readonly running = new Map<string, JobExecution>();
  private readonly inFlight = new Set<Promise<void>>();
  private closing: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly finishes: FinishSummary;
  readonly metrics: DroverMetrics;
  private unregisterMetrics: (() => void) | undefined;
  private readonly policy: CommandPolicy | undefined;
  private readonly envCipher: EnvCipher | undefined;
  /** The operator variables jobs get, cached until a change notice. */
  private readonly operatorEnv: OperatorEnv;
  /** Per-job resource limits from the configuration. */
  private readonly limits: NonNullable<ExecRequest['limits']>;
  /** Whom jobs run as when they name no user (RUNNER_JOB_USER), decided once. */
  private readonly jobUser: JobUserChoice;
  /** A uid per running job (RUNNER_JOB_UIDS), when the runner can switch users and RUNNER_JOB_USER is unset. */
  private readonly jobUids: JobUidPool | undefined;
  /** A cgroup per attempt, when the runner may make them (see docs/containment.md). */
  private cgroups: RunnerCgroups | undefined;
  /** What the runner is for jobs' constraints, and that encoded for the claim script. */
  readonly placement: RunnerPlacement;
  private readonly placementArg: string;
  private placementPuller: PlacementPuller | undefined;

  /** How jobs' processes are held together here: the runner registry and /readyz show it. */
  get containment(): string {
    return this.executor.containmentMode;
  }

  /** What /readyz shows beside the status. */
  readinessDetails(): Record<string, unknown> {
    return { containment: this.containment, cgroupControllers: this.cgroups?.controllers ?? null };
  }

  constructor(private readonly opts: RunnerOptions) {
    const { config } = opts;
    this.id = config.runner.id;
    this.log = opts.logger.child({ runnerId: this.id });
    this.finishes = new FinishSummary(this.log);
    // Before any connection is opened: a job user that cannot be honoured is a configuration error.
    this.jobUser = chooseJobUser(config.runner.jobUser, undefined, config.runner.jobUids);
    this.policy = loadPolicy(config.policyFile);
    const selection = parseQueueSelection(config.runner.queues);
    if (Array.isArray(selection)) throw new Error(`RUNNER_QUEUES ${selection.join('; ')}`);
    this.selection = selection;
    this.envCipher = config.envKey ? new EnvCipher(config.envKey) : undefined;
    this.metrics = opts.metrics ?? new DroverMetrics({ defaultMetrics: false });
    this.limits = [];
    if (config.runner.maxOpenFiles > 0) this.limits.push({ resource: 'nofile', value: config.runner.maxOpenFiles });
    if (config.runner.maxMemoryMb > 0) this.limits.push({ resource: 'as', value: config.runner.maxMemoryMb * 1024 * 1024 });
    this.redis = createRedis(config.redisUrl, 'worker', `drover-runner:${this.id}`);
    this.subscriber = createRedis(config.redisUrl, 'subscriber', `drover-runner-control:${this.id}`);
    for (const r of [this.redis, this.subscriber]) r.on('error', (err) => this.log.warn({ err: err.message }, 'redis connection error'));
    this.store = new JobStore(this.redis, config.prefix);
    this.logs = new LogStore(this.redis, this.store.keys);
    this.events = new EventStore(this.redis, this.store.keys);
    this.operatorEnv = new OperatorEnv(new VariableStore(this.redis, this.store.keys), this.log);
    this.transport = createTransport(config, logBrokerEvents(this.log, config.broker, this.metrics), (m) => this.log.warn(m));
    this.executor = opts.executor ?? this.chooseExecutor();
    const executor = this.executor;
    this.jobUids = this.jobUser.uids && new JobUidPool({
      range: this.jobUser.uids,
      runnerId: this.id,
      killAll: (uid) => executor.killUid(uid),
      prepareAhead: true,
      onRetired: (uid, err) => this.log.error({ uid, err: coerceError(err) }, 'a job uid could not be cleared after its job; it stays out of use'),
    });
    this.slots = new Slots(config.runner.concurrency);
    this.placement = runnerPlacement(this.id, config.runner.labels, opts.host?.name, opts.host?.addresses);
    this.placementArg = encodePlacement(this.placement);
    this.heartbeat = new Heartbeat(this, this.store, this.log, {
      leaseMs: config.runner.leaseMs,
      fenceMarginMs: config.runner.fenceMarginMs,
      host: opts.host?.name ?? hostname(),
      addresses: this.placement.addresses,
      labels: this.placement.labels,
      queues: config.runner.queues,
      concurrency: config.runner.concurrency,
      executor: this.executor.name,
      maxJobResources: config.runner.maxJobResources,
    });
  }


  private chooseExecutor(): Executor {
    const { executor, spawnerPath } = this.opts.config.runner;
    const path = spawnerPath ?? DEFAULT_SPAWNER_PATH;
    if (executor === 'child_process') return new ChildProcessExecutor();
    if (executor === 'spawner' || SpawnerExecutor.available(path)) return new SpawnerExecutor(path, this.log);
    this.log.warn({ path }, 'spawner helper not built (no C compiler at install?): commands start with child_process, which forks the runner');
    return new ChildProcessExecutor();
  }

  async start(): Promise<void> {
    if (this.executor instanceof SpawnerExecutor) {
      if (this.opts.config.runner.executor === 'spawner' && !SpawnerExecutor.available(this.opts.config.runner.spawnerPath ?? DEFAULT_SPAWNER_PATH)) {
        throw new Error('RUNNER_EXECUTOR=spawner but the spawner helper is not built; run npm run build');
      }
      const setting = this.opts.config.runner.cgroup;
      this.cgroups = await RunnerCgroups.open(this.id, this.log, setting).catch((err: unknown) => {
        // A directory the operator named and cannot be used is an error; under auto, the fallback is said and taken.
        if (setting !== 'auto') throw err;
        this.log.warn({ err: coerceError(err) }, 'cannot use cgroups for jobs: containing them by process group');
        return undefined;
      });
      this.executor.contain({ cgroups: this.cgroups, jobUids: this.jobUser.uids });
      await this.executor.init();
      this.log.info({ containment: this.executor.containmentMode, controllers: this.cgroups?.controllers ?? null }, 'job containment');
      const cleared = await this.jobUids?.sweepLeftovers().catch((err: unknown) => {
        this.log.warn({ err: coerceError(err) }, 'could not sweep the job uids for leftovers');
        return [];
      });
      if (cleared?.length) this.log.warn({ uids: cleared }, 'killed what jobs of a runner of this host that is gone left running');
    } else if (this.limits.length > 0) {
      this.log.warn('RUNNER_MAX_OPEN_FILES / RUNNER_MAX_MEMORY_MB are not applied: only the spawner helper sets resource limits');
    }
    if (this.jobUser.warning) this.log.warn({ jobUser: this.jobUser.user?.login.user ?? null }, this.jobUser.warning);
    if (this.jobUids) {
      const { first, last } = this.jobUids.range;
      this.log.info({ jobUids: `${first}-${last}` }, 'each job runs as a uid of its own (RUNNER_JOB_UIDS)');
    }
    await connectRedis(this.redis, 10_000);
    await checkRedisDurability(this.redis, this.log);
    await this.transport.ready();
    await this.subscriber.subscribe(this.store.keys.control);
    this.subscriber.on('message', (_channel, payload) => this.onControl(payload));
    this.consumer = this.transport.consume(
      {
        queues: [...this.selection.names],
        concurrency: this.opts.config.runner.concurrency,
        onError: (err) => this.log.warn({ err: err.message }, 'consumer error'),
      },
      (msg) => this.track(this.handle(msg)),
    );
    this.queueWatcher = new QueueWatcher(this.redis, this.selection, this.consumer, this.log, {
      queuesKey: this.store.keys.queues,
      scanMs: this.opts.config.runner.queueScanMs ?? 2000,
    });
    await this.queueWatcher.start();
    this.state = 'running';
    this.placementPuller = new PlacementPuller(this.store, this.placement, (q) => this.selection.serves(q), {
      accepting: () => this.state === 'running',
      takePlaced: (jobId, queue) => this.takePlaced(jobId, queue),
    }, this.log, this.opts.config.runner.queueScanMs ?? 2000);
    await this.placementPuller.start();
    if (this.opts.config.compat?.coyotesList) {
      // A connection of its own: the reader blocks on it.
      this.listRedis = createRedis(this.opts.config.redisUrl, 'worker', `drover-runner-coyotes:${this.id}`);
      this.listRedis.on('error', (err) => this.log.warn({ err: err.message }, 'redis connection error (Coyotes list)'));
      this.listReader = new CoyotesListReader(this.listRedis, this.store, this.transport, this.id, this.opts.config.compat.coyotesListKey, this.log, this.metrics);
      await this.listReader.start();
    }
    this.unregisterMetrics = this.metrics.addRunner(this.id, () => ({
      id: this.id,
      running: this.running.size,
      capacity: this.slots.size,
      free: this.state === 'running' ? this.slots.free : 0,
    }));
    await this.heartbeat.start();
    await this.redis.srem(this.store.keys.runnersGone, this.id);
    await this.announce('runner.joined');
    if (this.opts.config.faults?.noFencing) this.log.warn('FAULT HOOK ACTIVE: jobs are not fenced; they run on past unrenewed leases (testing only)');
    this.log.info({ queues: this.opts.config.runner.queues, concurrency: this.slots.size, executor: this.executor.name }, 'runner started');
  }

  get freeSlots(): number {
    return this.slots.free;
  }

  isLive(): boolean {
    return this.state !== 'running' || (this.consumer?.isRunning() ?? false);
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  /** One broker message. Never throws: a thrown handler would make the broker drop or re-deliver blindly. */
  private async handle(msg: JobMessage): Promise<void> {
    await this.slots.acquire();
    try {
      if (this.state !== 'running') {
        // Fetched while draining: hand it back rather than lose it.
        await this.transport.publish([msg]);
        return;
      }
      await this.execute(msg);
    } catch (err) {
      this.log.error({ err: coerceError(err), jobId: msg.jobId }, 'handling a job message failed');
    } finally {
      this.slots.release();
    }
  }

  private async execute(msg: JobMessage): Promise<void> {
    // A broker that cannot order by priority (RabbitMQ quorum queues): the store picks the job (CLAIM, storeOrder).
    const claimed = await this.claim(msg, !this.transport.capabilities.priorities);
    // Under store order the delivery may have claimed another job of its queue than the one it names.
    if ('claim' in claimed) await this.runClaimed({ jobId: claimed.claim.jobId, queue: msg.queue }, claimed.claim, claimed.sentAt);
  }

  /** Claims a delivered (or declined, see takePlaced) job; the status the claim found instead when it is not ours. */
  private async claim(msg: JobMessage, storeOrder = false): Promise<{ claim: Claim; sentAt: number } | { status: string }> {
    const { runner } = this.opts.config;
    // The claim's lease runs from when it was sent: the attempt's fence counts from there until the first renewal.
    let claimSentAt = 0;
    const claim = await untilStored(`the claim of job ${msg.jobId}`, this.log, () => {
      claimSentAt = performance.now();
      return this.store.claim(msg.jobId, this.id, runner.leaseMs, Date.now(), this.placementArg, storeOrder ? { queue: msg.queue } : undefined);
    });
    if ('status' in claim) {
      // 'parked': the queue is paused or full; the job waits in the store and is published again when released.
      // 'placement': this runner does not satisfy the job's constraints; it waits in the store for one that does.
      const why = claim.status === 'parked' ? 'job parked by its queue settings'
        : claim.status === 'placement' ? 'job declined: this runner does not satisfy its constraints'
          : claim.status === 'expired' ? 'job expired: its deadline passed before it started; not run'
          : 'duplicate or stale delivery dropped';
      this.log.debug({ jobId: msg.jobId, status: claim.status }, why);
      return claim;
    }
    return { claim, sentAt: claimSentAt };
  }

  /**
   * A job another runner declined and this one satisfies (placement-puller.ts): in a slot taken ahead of broker
   * deliveries, since it waited already. Runs in the background once claimed; resolves with how the claim went.
   */
  private async takePlaced(jobId: string, queue: string): Promise<string> {
    await this.slots.acquireFirst();
    let running = false;
    try {
      if (this.state !== 'running') return 'stopped';
      const msg: JobMessage = { jobId, queue };
      const claimed = await this.claim(msg);
      if (!('claim' in claimed)) return claimed.status;
      running = true;
      void this.track(
        this.runClaimed(msg, claimed.claim, claimed.sentAt)
          .catch((err: unknown) => this.log.error({ err: coerceError(err), jobId }, 'running a declined job failed'))
          .finally(() => this.slots.release()),
      );
      return 'claimed';
    } finally {
      if (!running) this.slots.release();
    }
  }

  private async runClaimed(msg: JobMessage, claim: Claim, claimSentAt: number): Promise<void> {
    const telemetry = new JobTelemetry(this.metrics, msg.jobId, msg.queue, claim, this.opts.config.broker);
    try {
      await telemetry.within(() => this.run(msg, claim, claimSentAt, telemetry));
    } catch (err) {
      telemetry.abandoned(err);
      throw err;
    }
  }

  /** Runs a claimed attempt and records its end. */
  private async run(msg: JobMessage, claim: Claim, claimSentAt: number, telemetry: JobTelemetry): Promise<void> {
    const { runner, killGraceMs } = this.opts.config;
    // Re-checked here: whoever can write to Redis or the broker could have bypassed the API. A refusal is final,
    // never retried: every attempt would be refused again. The executable itself is checked right before the spawn.
    const violation = policyViolation(this.policy, claim.spec);
    if (violation) {
      this.log.warn({ jobId: msg.jobId, violation }, 'job refused by the command policy');
      const finished = await untilStored(`the outcome of job ${msg.jobId}`, this.log, () => this.store.finish({
        id: msg.jobId, runnerId: this.id, attempt: claim.attempt, outcome: 'failed', exitCode: null, signal: null,
        error: `refused by the runner's command policy: ${violation}`, outputBytes: claim.outputBytes, truncated: false,
        retryDelayMs: 0, startedAt: null, usage: null, final: true,
      }));
      telemetry.finished('failed', null, null, finished);
      return;
    }
    const operatorEnv = await this.operatorEnv.current();
    const exec = new JobExecution(
      msg.jobId, msg.queue, claim,
      {
        runnerId: this.id, killGraceMs, outputCapBytes: runner.outputCapBytes, envPassthrough: runner.envPassthrough,
        baseEnv: this.opts.env ?? process.env, workDir: runner.workDir, limits: this.limits,
        allowedUsers: runner.allowedUsers, allowedGroups: runner.allowedGroups, jobUser: this.jobUser.user, jobUids: this.jobUids,
        interpreters: this.opts.config.scripts?.interpreters ?? ['sh', 'bash', 'python3', 'node'],
        policy: this.policy,
        fence: this.opts.config.faults?.noFencing ? undefined : new LeaseFence({ leaseMs: runner.leaseMs, marginMs: runner.fenceMarginMs }, claimSentAt),
        envCipher: this.envCipher,
        operatorEnv,
        maxResources: runner.maxJobResources,
      },
      this.logs, this.log, telemetry.processTraceparent(),
    );
    this.running.set(msg.jobId, exec);
    let pidTimer: NodeJS.Timeout | undefined;
    let stopSlowAlert: (() => void) | undefined;
    try {
      const result = await exec.run(this.executor, (pid, at) => {
        telemetry.spawned(at);
        stopSlowAlert = this.slowAlert(msg.jobId, msg.queue, claim, at);
        // Most jobs end within milliseconds; their pid is never seen, so it is only recorded for those still running.
        pidTimer = setTimeout(() => {
          this.store.setPid(msg.jobId, this.id, claim.attempt, pid, at).catch((err: unknown) =>
            this.log.warn({ err: coerceError(err), jobId: msg.jobId }, 'recording pid failed'),
          );
        }, PID_REPORT_DELAY_MS);
      });
      clearTimeout(pidTimer);
      if (result.outcome === 'stale') {
        this.log.warn({ jobId: msg.jobId }, 'lease lost while running; the job was handed to another attempt');
        telemetry.abandoned(new Error('lease lost while running'));
        return;
      }
      const outcome = { id: msg.jobId, runnerId: this.id, attempt: claim.attempt, ...result, outcome: result.outcome };
      // The job stays in `running` (its lease renewed) until its outcome is stored, however long Redis refuses it.
      // A fenced attempt's outcome usually waits for the store to come back, and by then the scheduler may have taken
      // the job for lost and run it again: the write is then stale (finish says so and changes nothing), which is fine.
      const finished = await untilStored(`the outcome of job ${msg.jobId}`, this.log, () => this.store.finish(outcome));
      if (finished.kind === 'stale') this.log.warn({ jobId: msg.jobId, attempt: claim.attempt, outcome: result.outcome, now: finished.status }, 'outcome not recorded: the job had moved on meanwhile (its lease expired)');
      telemetry.finished(result.outcome, result.exitCode, result.startedAt, finished);
      const next = finished.kind === 'retry' && finished.status === 'queued' ? [{ id: msg.jobId, queue: finished.queue }] : [];
      // A slot of a gated queue came free: let the next parked job go now rather than on the scheduler's tick.
      if (claim.gated) next.push(...(await this.store.releaseParked(msg.queue, 1)));
      await publishQueued(this.transport, this.store, next);
      this.finishes.record({ jobId: msg.jobId, attempt: claim.attempt, outcome: result.outcome, exitCode: result.exitCode, next: finished.status });
    } finally {
      clearTimeout(pidTimer);
      stopSlowAlert?.();
      this.running.delete(msg.jobId);
    }
  }

  /**
   * For a job with alertAfterMs: a timer from its spawn that records job.slow (the store checks the attempt still
   * runs here). A warning only; the job goes on. A runner that dies first sends none: its attempt is lost anyway.
   */
  private slowAlert(jobId: string, queue: string, claim: Claim, spawnedAt: number): (() => void) | undefined {
    const after = claim.spec.alertAfterMs;
    if (after === undefined) return undefined;
    let timer: NodeJS.Timeout;
    const arm = (): void => {
      // A timer may fire a little early (libuv measures from the loop's cached time): the alert never precedes
      // startedAt + alertAfterMs.
      const left = spawnedAt + after - Date.now();
      timer = setTimeout(left > 0 ? arm : mark, Math.max(0, left));
    };
    const mark = (): void => void this.store.markSlow(jobId, this.id, claim.attempt, Date.now() - spawnedAt, after).then(
      (marked) => {
        if (!marked) return;
        this.metrics.jobsSlow.inc({ queue });
        this.log.warn({ jobId, queue, attempt: claim.attempt, alertAfterMs: after }, 'job is running longer than its alertAfterMs');
      },
      (err: unknown) => this.log.warn({ err: coerceError(err), jobId }, 'recording job.slow failed'),
    );
    arm();
    return () => clearTimeout(timer);
  }

  /** Records a runner event; a failure to record is logged, never fatal. */
  private async announce(type: 'runner.joined' | 'runner.draining' | 'runner.resumed' | 'runner.stopped'): Promise<void> {
    const { queues, concurrency } = this.opts.config.runner;
    await this.events
      .append(type, { data: { runnerId: this.id, host: hostname(), pid: process.pid, queues, concurrency } })
      .catch((err: unknown) => this.log.warn({ err: coerceError(err), type }, 'recording a runner event failed'));
  }

  /**
   * Drain on an operator's request: stop taking jobs, let running ones finish, stay up (resume undoes it).
   * Unlike close(), nothing is stopped and the process keeps heartbeating, so it can be resumed.
   */
  applyDesired(desired: string | null): void {
    if (this.closing) return;
    if (desired === 'draining' && this.state === 'running') {
      this.state = 'draining';
      this.log.info({ running: this.running.size }, 'draining on request: taking no more jobs');
      void this.consumer?.pause();
      void this.heartbeat.beat();
      void this.announce('runner.draining');
    } else if (desired === null && this.state === 'draining') {
      this.state = 'running';
      this.log.info('resumed on request');
      this.consumer?.resume();
      void this.heartbeat.beat();
      void this.announce('runner.resumed');
      // Jobs declined by others while this one drained wait for it in the store.
      void this.placementPuller?.scan();
    }
  }

  private onControl(payload: string): void {
    try {
      const msg = JSON.parse(payload) as { type?: string; jobId?: string; runnerId?: string };
      if (msg.type === 'cancel' && msg.jobId) this.running.get(msg.jobId)?.stop('cancel');
      // The API saw a queue it had not seen before: a runner serving a pattern looks whether it matches.
      if (msg.type === 'queues') void this.queueWatcher?.scan();
      if (msg.type === 'variables') this.operatorEnv.invalidate();
      // A runner declined a job (constraints): this one takes it if it satisfies them.
      if (msg.type === 'placement') this.placementPuller?.notice(msg as Partial<PlacementNotice>);
      if ((msg.type === 'drain' || msg.type === 'resume') && msg.runnerId === this.id) this.applyDesired(msg.type === 'drain' ? 'draining' : null);
    } catch {
      this.log.warn({ payload }, 'ignoring malformed control message');
    }
  }

  /** Called by the heartbeat for jobs whose lease is gone or whose cancel flag it found. */
  stopJobs(ids: string[], reason: 'cancel' | 'lease_lost'): void {
    for (const id of ids) this.running.get(id)?.stop(reason);
  }

  /** Called by the heartbeat for the leases the store confirmed: each job's fence moves on. */
  leasesRenewed(ids: string[], sentAt: number): void {
    for (const id of ids) this.running.get(id)?.leaseRenewed(sentAt);
  }

  /**
   * Stop taking work, let running jobs finish within the drain timeout, stop the rest (recorded as lost and
   * retried per their policy), then close connections. Idempotent; each step runs even if one before failed.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        this.log.error({ err: coerceError(err) }, `runner shutdown: ${name} failed`);
      }
    };
    this.state = 'draining';
    this.log.info({ running: this.running.size }, 'draining');
    await step('stop watching for queues', async () => this.queueWatcher?.stop());
    await step('stop taking declined jobs', async () => within(this.placementPuller?.stop(), CLOSE_STEP_MS));
    await step('pause consumer', async () => this.consumer?.pause());
    await step('stop Coyotes list reader', async () => {
      await within(this.listReader?.close(), CLOSE_STEP_MS);
      this.listRedis?.disconnect();
    });
    await step('heartbeat draining', () => this.heartbeat.beat());
    await step('wait for running jobs', () => this.waitIdle(this.opts.config.runner.drainTimeoutMs));
    if (this.running.size > 0) {
      this.log.warn({ jobs: [...this.running.keys()] }, 'drain timeout: stopping running jobs');
      for (const exec of this.running.values()) exec.stop('shutdown');
    }
    await step('wait for stopped jobs', () => Promise.allSettled([...this.inFlight]));
    this.finishes.close();
    dropKeptJobDirs(this.opts.config.runner.workDir);
    await step('close consumer', async () => this.consumer?.close());
    await step('free the uid prepared ahead', () => within(this.jobUids?.close() ?? Promise.resolve(), CLOSE_STEP_MS));
    // Bounded: with Redis or the broker gone at shutdown, these would otherwise wait forever.
    await step('stop heartbeat', () => within(this.heartbeat.stop(), CLOSE_STEP_MS));
    await step('announce stop', () => within(this.announce('runner.stopped'), CLOSE_STEP_MS));
    await step('close transport', () => within(this.transport.close(), CLOSE_STEP_MS));
    await step('close executor', () => this.executor.close());
    await step('remove job cgroups', async () => this.cgroups?.close());
    this.unregisterMetrics?.();
    this.state = 'stopped';
    await step('close redis', async () => {
      this.subscriber.disconnect();
      await within(this.redis.quit(), CLOSE_STEP_MS);
      this.redis.disconnect();
    });
    this.log.info('runner stopped');
  }

  private async waitIdle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
  }
}
