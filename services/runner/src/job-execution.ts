import {
  badRelativePath, openEnv, resolveAllowedProgram, retryDelayMs, specArgv, type Claim, type EnvCipher, type CommandPolicy, type FinishInput, type FinishOutcome, type JobSpec, type LogStore, type Logger,
} from '@drover/core';
import { effectiveResources, RESOURCE_MAXIMUM_VARIABLES, type JobResources } from '@drover/core';
import { chownSync } from 'node:fs';
import { chown, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ExecExit, ExecProcess, ExecRequest, Executor } from './executor.js';
import { loginEnv, perJobIdentity, resolveIdentity, type Identity, type JobUser } from './identity.js';
import type { JobUidLease, JobUidPool } from './job-uids.js';
import { giveBackJobDir, isEmptyDir, takeJobDir } from './job-dirs.js';
import { fencedError, type LeaseFence } from './lease-fence.js';
import { OutputCollector } from './output.js';
import { PROGRESS_FILE, PROGRESS_POLL_MS, readProgressFile, readResultFile, RESULT_FILE } from './job-report.js';

/** Why the runner itself ended a job early. */
export type StopReason = 'timeout' | 'cancel' | 'shutdown' | 'lease_lost';

export interface ExecutionOptions {
  /** Opens env values sealed at rest (DROVER_ENV_KEY); without it a sealed value fails the attempt. */
  envCipher?: EnvCipher | undefined;
  /** Operator variables (PUT /v1/variables) as stored (sealed with DROVER_ENV_KEY when set): under the job's own env. */
  operatorEnv?: Readonly<Record<string, string>> | undefined;
  runnerId: string;
  killGraceMs: number;
  /** Self-fencing: keeps the process's deadline ahead of its lease's end; undefined only under a test fault hook. */
  fence?: LeaseFence | undefined;
  outputCapBytes: number;
  envPassthrough: readonly string[];
  /** The runner's own environment, read for the passthrough variables. */
  baseEnv: Readonly<Record<string, string | undefined>>;
  /** Parent of the per-attempt private directories. */
  workDir: string;
  limits: NonNullable<ExecRequest['limits']>;
  allowedUsers: string[];
  allowedGroups: string[];
  /** Whom jobs that name no `user` run as (RUNNER_JOB_USER); undefined: the runner's own user, or jobUids. */
  jobUser: JobUser | undefined;
  /** When set, each job that names no `user` runs as a uid of its own from this pool (RUNNER_JOB_UIDS). */
  jobUids?: JobUidPool | undefined;
  /** Interpreters scripts may name (DROVER_SCRIPT_INTERPRETERS). */
  interpreters: string[];
  /** The command policy (DROVER_POLICY_FILE): the program is resolved and checked against it right before the spawn. */
  policy?: CommandPolicy | undefined;
  /** The most one attempt may use here (RUNNER_MAX_JOB_*), and the limit of jobs that set none; default none. */
  maxResources?: JobResources | undefined;
}

/** A spawn the command policy refused on this runner: the attempt fails, and the job with it (no retry). */
class PolicyRefusal extends Error {}

/** Where a job's `stdin` waits in its private directory. */
const STDIN_FILE = '.drover-stdin';

/**
 * The argv that runs `argv` with the job's stdin file as its standard input: the spawners give every job /dev/null,
 * so a shell opens the file and execs the program (already resolved and allowed by the policy) in its place.
 */
const withStdin = (argv: string[], jobDir: string): string[] => ['/bin/sh', '-c', 'exec "$@" <"$0"', join(jobDir, STDIN_FILE), ...argv];

/** Writes a script job's body, its files and its stdin into its private directory; returns the argv to run. */
async function prepareFiles(spec: JobSpec, jobDir: string, owner: { uid?: number; gid?: number }, interpreters: string[]): Promise<string[]> {
  const own = async (path: string): Promise<void> => {
    if (owner.uid !== undefined || owner.gid !== undefined) await chown(path, owner.uid ?? -1, owner.gid ?? -1);
  };
  for (const [rel, content] of Object.entries(spec.files ?? {})) {
    // Checked at submit; checked again here, since whoever can write to Redis could have bypassed the API.
    if (badRelativePath(rel)) throw new Error(`file path "${rel}" leaves the job's directory`);
    const path = join(jobDir, rel);
    const dir = dirname(path);
    if (dir !== jobDir) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (let d = dir; d !== jobDir && d.startsWith(jobDir); d = dirname(d)) await own(d);
    }
    await writeFile(path, typeof content === 'string' ? content : Buffer.from(content.base64, 'base64'), { mode: 0o600 });
    await own(path);
  }
  if (spec.stdin !== undefined) {
    const path = join(jobDir, STDIN_FILE);
    await writeFile(path, typeof spec.stdin === 'string' ? spec.stdin : Buffer.from(spec.stdin.base64, 'base64'), { mode: 0o600 });
    await own(path);
  }
  if (spec.script === undefined) return specArgv(spec);
  const interpreter = spec.interpreter ?? 'sh';
  if (!interpreters.includes(interpreter)) throw new Error(`interpreter "${interpreter}" is not allowed on this runner (DROVER_SCRIPT_INTERPRETERS)`);
  const path = join(jobDir, '.drover-script');
  await writeFile(path, spec.script, { mode: 0o700 });
  await own(path);
  return [interpreter, path, ...(spec.args ?? [])];
}

/** What the attempt came to: the finish record minus who ran it, or `stale` when the job is no longer ours. */
export type ExecutionResult = Omit<FinishInput, 'id' | 'runnerId' | 'attempt' | 'outcome'> & { outcome: FinishOutcome | 'stale' };

/** One attempt of one job on this runner: spawn, watch, stop on demand, collect output, decide the outcome. */
export class JobExecution {
  private proc: ExecProcess | undefined;
  private stopReason: StopReason | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  /** How long the lease had gone unrenewed when the process ended (for a fenced exit's error). */
  private unrenewedAtExitMs = 0;
  /** The limits this attempt runs with (job, else queue default, else runner maximum). */
  private resources: JobResources = {};

  constructor(
    readonly id: string,
    readonly queue: string,
    readonly claim: Claim,
    private readonly opts: ExecutionOptions,
    private readonly logs: LogStore,
    private readonly log: Logger,
    /** W3C trace context handed to the command as TRACEPARENT, when the job is traced. */
    private readonly traceparent?: string,
  ) {}

  get attempt(): number {
    return this.claim.attempt;
  }

  /** The job's own timeout, else its queue's default. */
  get timeoutMs(): number | undefined {
    return this.claim.spec.timeoutMs ?? this.claim.queueTimeoutMs;
  }

  /** The heartbeat's renewal, sent at `sentAt` (monotonic ms), was confirmed: the fence moves on. */
  leaseRenewed(sentAt: number): void {
    this.opts.fence?.renewed(sentAt);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  childEnv(spec: JobSpec, identity: Identity = {}): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of this.opts.envPassthrough) {
      const v = this.opts.baseEnv[name];
      if (v !== undefined) env[name] = v;
    }
    // Operator variables over the runner's passed-through ones; the login's and the job's own over them.
    Object.assign(env, openEnv(this.opts.envCipher, this.opts.operatorEnv ?? {}));
    Object.assign(env, loginEnv(identity));
    // Sealed values (DROVER_ENV_KEY) are opened here, at the last moment, and only in the child's environment.
    Object.assign(env, openEnv(this.opts.envCipher, spec.env));
    env.DROVER_JOB_ID = this.id;
    env.DROVER_QUEUE = this.queue;
    env.DROVER_ATTEMPT = String(this.attempt);
    env.DROVER_REPLICA_INDEX = String(this.claim.replica);
    env.DROVER_REPLICAS = String(spec.replicas ?? 1);
    if (this.traceparent) env.TRACEPARENT = this.traceparent;
    return env;
  }

  /** Starts the process; `onStarted` gets the pid as soon as it is known. */
  async run(executor: Executor, onStarted: (pid: number, at: number) => void): Promise<ExecutionResult> {
    const spec = this.claim.spec;
    const effective = effectiveResources(spec.resources, this.claim.queueResources, this.opts.maxResources ?? {});
    if ('refusal' in effective) {
      // Final: every attempt on this runner would be refused the same way.
      this.log.warn({ jobId: this.id, resources: spec.resources, max: this.opts.maxResources }, 'job asks for more resources than this runner allows');
      return {
        outcome: 'failed', error: effective.refusal, final: true, exitCode: null, signal: null,
        outputBytes: this.claim.outputBytes, truncated: false, retryDelayMs: 0, startedAt: null, usage: null,
      };
    }
    this.resources = effective.resources;
    // The cap covers all attempts of a job, except a daemon's: it would fill up and then record nothing, forever.
    let stored = this.claim.outputBytes;
    if (spec.type === 'daemon') {
      await this.logs.startDaemonAttempt(this.id).catch((err: unknown) => this.log.warn({ err, jobId: this.id }, 'trimming daemon output failed'));
      stored = 0;
    }
    const output = new OutputCollector(this.logs, this.id, this.attempt, this.opts.outputCapBytes, stored, (err) =>
      this.log.error({ err, jobId: this.id }, 'storing job output failed'),
    this.queue);
    // A retry starts with no progress or result: its predecessor's would describe a run that is over.
    if (this.attempt > 1) await this.logs.clearReport(this.id).catch((err: unknown) => this.log.warn({ err, jobId: this.id }, 'clearing progress failed'));
    let progressPoll: NodeJS.Timeout | undefined;
    let jobUid: number | undefined;
    let exit: ExecExit;
    let startedAt: number | null = null;
    let refusal: string | undefined;
    // A private directory per attempt: the default cwd and TMPDIR, given back afterwards (job-dirs.ts).
    const jobDir = await takeJobDir(this.opts.workDir, this.id);
    let uidLease: JobUidLease | undefined;
    try {
      // A uid of its own, taken before anything is handed to it and held until the job's last process is gone.
      if (spec.user === undefined && this.opts.jobUids) uidLease = await this.opts.jobUids.acquire();
      const base = uidLease ? perJobIdentity(uidLease.uid, jobDir) : this.opts.jobUser;
      const identity = resolveIdentity(spec, { users: this.opts.allowedUsers, groups: this.opts.allowedGroups }, base);
      if (identity.uid !== undefined || identity.gid !== undefined) chownSync(jobDir, identity.uid ?? -1, identity.gid ?? -1);
      jobUid = identity.uid;
      const env = {
        ...this.childEnv(spec, identity), DROVER_JOB_DIR: jobDir, TMPDIR: jobDir,
        DROVER_PROGRESS_FILE: join(jobDir, PROGRESS_FILE), DROVER_RESULT_FILE: join(jobDir, RESULT_FILE),
      };
      const argv = await prepareFiles(spec, jobDir, identity, this.opts.interpreters);
      // As late as possible, after the job's files exist: the file the program name resolves to now is what runs,
      // under its resolved path, so a symlink changed after this point cannot redirect the exec.
      const program = resolveAllowedProgram(this.opts.policy, spec.queue, argv[0] ?? '', { jobRoot: this.opts.workDir });
      if ('violation' in program) throw new PolicyRefusal(program.violation);
      argv[0] = program.path;
      const toRun = spec.stdin !== undefined ? withStdin(argv, jobDir) : argv;
      if (spec.script !== undefined) {
        output.note(`script sha256:${spec.scriptSha256} (${Buffer.byteLength(spec.script)} bytes), run with ${argv[0]}`);
      }
      for (const c of effective.capped) {
        output.note(`resources.${c.name}: the queue default ${c.queueDefault} is more than this runner allows; capped to ${RESOURCE_MAXIMUM_VARIABLES[c.name]}=${c.max}`);
      }
      this.proc = await executor.start(
        {
          argv: toRun, env, cwd: spec.cwd ?? jobDir, limits: this.opts.limits, uid: identity.uid, gid: identity.gid, groups: identity.groups,
          resources: this.resources, label: `${this.id}.${this.attempt}`,
        },
        (stream, chunk) => output.write(stream, chunk),
      );
      if (this.proc.pid !== undefined) {
        startedAt = Date.now();
        onStarted(this.proc.pid, startedAt);
        // The claim set the lease; renewals made since the claim count (the heartbeat covers this job already).
        this.opts.fence?.attach(this.proc);
      }
      progressPoll = setInterval(() => void readProgressFile(jobDir, jobUid).then((p) => p !== undefined && output.setProgress(p)), PROGRESS_POLL_MS);
      if (this.timeoutMs !== undefined) this.timeoutTimer = setTimeout(() => this.stop('timeout'), this.timeoutMs);
      // A stop requested before the process existed (cancel during claim) applies now.
      if (this.stopReason) this.signalStop();
      exit = await this.proc.exited;
    } catch (err) {
      if (err instanceof PolicyRefusal) refusal = err.message;
      exit = { exitCode: null, signal: null, error: (err as Error).message };
    } finally {
      clearTimeout(this.timeoutTimer);
      clearTimeout(this.killTimer);
      clearInterval(progressPoll);
      this.unrenewedAtExitMs = this.opts.fence?.unrenewedMs() ?? 0;
      this.opts.fence?.detach();
    }
    // The files a job may report through are read before its directory goes; an empty one had none.
    if (startedAt !== null && !isEmptyDir(jobDir)) await this.readReportFiles(output, jobDir, jobUid);
    const removeDir = (): Promise<void> => giveBackJobDir(jobDir).catch((err: unknown) => {
      this.log.warn({ err, jobDir }, 'removing the job directory failed');
      throw err;
    });
    // With a uid of its own: its leftovers are killed first, and the uid is free only once its directory is gone.
    const cleanup = uidLease ? uidLease.release(removeDir) : removeDir().catch(() => undefined);
    await Promise.all([output.close(), cleanup]);
    if (refusal !== undefined) {
      return {
        outcome: 'failed', error: `refused by the runner's command policy: ${refusal}`, final: true, exitCode: null, signal: null,
        outputBytes: output.bytes, truncated: output.truncated, retryDelayMs: 0, startedAt: null, usage: null,
      };
    }
    return {
      ...this.outcome(exit),
      exitCode: exit.exitCode,
      signal: exit.signal,
      outputBytes: output.bytes,
      truncated: output.truncated,
      retryDelayMs: retryDelayMs(spec.backoff, this.attempt + 1),
      startedAt,
      usage: exit.usage ?? null,
    };
  }

  private async readReportFiles(output: OutputCollector, jobDir: string, uid: number | undefined): Promise<void> {
    const [progress, result] = await Promise.all([readProgressFile(jobDir, uid), readResultFile(jobDir, uid)]);
    if (progress !== undefined) output.setProgress(progress);
    if (result !== undefined) output.setResult(result);
  }

  private outcome(exit: ExecExit): { outcome: ExecutionResult['outcome']; error: string | null } {
    // Killed by its fence: the job is the runner's loss, not its own failure (retried under maxLost). Unless the
    // heartbeat already heard the job is someone else's now: then there is nothing to record.
    if (exit.fenced && this.stopReason !== 'lease_lost') {
      this.log.warn({ jobId: this.id, attempt: this.attempt, unrenewedMs: this.unrenewedAtExitMs }, 'fenced: the lease could not be renewed in time; the attempt was killed');
      return { outcome: 'lost', error: fencedError(this.unrenewedAtExitMs) };
    }
    switch (this.stopReason) {
      case 'timeout':
        return { outcome: 'timed_out', error: `timed out after ${this.timeoutMs} ms` };
      case 'cancel':
        return { outcome: 'cancelled', error: 'cancelled on request' };
      case 'shutdown':
        return { outcome: 'lost', error: 'the runner shut down before the job finished' };
      case 'lease_lost':
        return { outcome: 'stale', error: null };
      case undefined:
        if (exit.lost) return { outcome: 'lost', error: exit.error ?? 'the executor lost track of the process' };
        if (exit.oomKilled) return { outcome: 'failed', error: this.outOfMemory() };
        if (exit.error) return { outcome: 'failed', error: `could not start: ${exit.error}` };
        return { outcome: exit.exitCode === 0 ? 'succeeded' : 'failed', error: null };
    }
  }

  /** The error of an attempt the kernel OOM-killed under its memory limit. */
  private outOfMemory(): string {
    return this.resources.memoryMb !== undefined ? `out of memory (limit ${this.resources.memoryMb} MiB)` : 'out of memory';
  }

  /** SIGTERM to the group, SIGKILL after the grace period. The first reason wins. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    if (this.proc) this.signalStop();
  }

  private signalStop(): void {
    const proc = this.proc;
    if (!proc) return;
    proc.signalGroup('SIGTERM');
    this.killTimer = setTimeout(() => proc.signalGroup('SIGKILL'), this.opts.killGraceMs);
  }
}
