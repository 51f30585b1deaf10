import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';
import type { Logger, UidRange } from '@drover/core';
import type { AttemptCgroup, RunnerCgroups } from './containment/cgroups.js';
import { ChildProcessExecutor, DeadlineTimer, jobUidProblem, signalGroup, type ExecExit, type ExecProcess, type ExecRequest, type Executor, type OutputStreamName } from './executor.js';
import {
  CONTAINMENT_VERSION, FrameDecoder, KILL_UID_VERSION, encodeDeadline, encodeKillUid, encodeSignal, encodeStart, type SpawnerEvent,
} from './spawner-protocol.js';

/** Where `npm ci` / `npm run build` put the compiled helper (see scripts/build-spawner.mjs). */
export const DEFAULT_SPAWNER_PATH = fileURLToPath(new URL('../native/build/drover-spawner', import.meta.url));

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/**
 * How long a start waits for a helper that was up and died. Not child_process meanwhile: a job started that way
 * has no cgroup and no subreaper, so what it leaves would outlive it. After this the attempt is reported lost.
 */
const HELPER_WAIT_MS = 15_000;

interface Pending {
  onOutput: (stream: OutputStreamName, chunk: Buffer) => void;
  started: (proc: ExecProcess) => void;
  exited: (exit: ExecExit) => void;
  pid: number | undefined;
  deadline?: DeadlineTimer;
  cgroup?: AttemptCgroup | undefined;
}

/** Where the helper's containment comes from, set once before init. */
export interface SpawnerContainment {
  /** The runner's cgroups; undefined: process groups (and the jobs' own uids) only. */
  cgroups?: RunnerCgroups | undefined;
  /** RUNNER_JOB_UIDS: a uid in it is one job's own, which the helper may kill whole. */
  jobUids?: UidRange | undefined;
}

function errnoText(errno: number): string {
  const entry = getSystemErrorMap().get(-errno);
  return entry ? `${entry[0]} (${entry[1]})` : `errno ${errno}`;
}

/** Linux resource numbers (x86_64 and arm64 agree on these). */
const RLIMIT = { as: 9, nofile: 7, nproc: 6 } as const;

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * Launches commands through drover-spawner, a small C helper that starts them with clone(CLONE_VM|CLONE_VFORK),
 * so the runner's event loop never pays for fork() of its own memory. While a helper that never came up is
 * unavailable (not built, cannot start) commands go through child_process instead, with a warning. Once it was up,
 * a crash makes starts wait for its restart: jobs it was running are reported lost (killed whole first) so their
 * retry policy decides.
 */
export class SpawnerExecutor implements Executor {
  readonly name = 'spawner';
  private helper: ChildProcess | undefined;
  private state: 'down' | 'starting' | 'up' | 'closed' = 'down';
  private readonly jobs = new Map<number, Pending>();
  /** killUid requests the helper has not answered yet, by request id. */
  private readonly kills = new Map<number, { uid: number; done: (err: Error | undefined) => void }>();
  /** What the running helper speaks (its ready frame); an older binary lacks KillUid. */
  private helperVersion = 0;
  private nextId = 1;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly fallback = new ChildProcessExecutor();
  private warnedFallback = false;
  private containment: SpawnerContainment = {};
  /** The helper was up once: from then on starts wait for it rather than fall back. */
  private wasUp = false;
  private upWaiters: (() => void)[] = [];
  private warnedCpu = false;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  static available(path: string): boolean {
    return existsSync(path);
  }

  /** True while commands go through the helper (false while falling back to child_process). */
  get usingHelper(): boolean {
    return this.state === 'up';
  }

  get helperPid(): number | undefined {
    return this.helper?.pid;
  }

  /** Call before init: the helper's guard is told the runner's cgroups when it starts. */
  contain(containment: SpawnerContainment): void {
    this.containment = containment;
  }

  /** How a job's processes are held together here (runner registry, /readyz). */
  get containmentMode(): string {
    if (this.state !== 'up' || this.helperVersion < CONTAINMENT_VERSION) return this.fallback.containmentMode;
    return this.containment.cgroups?.mode ?? 'process-group+subreaper';
  }

  /** Starts the helper and waits for its hello; on failure the executor runs on the fallback and retries. */
  async init(): Promise<void> {
    if (this.state === 'closed' || this.state === 'starting' || this.state === 'up') return;
    this.state = 'starting';
    // An empty environment: the helper needs none (each job's comes in its start frame), and the runner's holds secrets.
    const helper = spawn(this.path, this.containment.cgroups?.guardArgs ?? [], { stdio: ['pipe', 'pipe', 'inherit'], env: {} });
    this.helper = helper;
    const decoder = new FrameDecoder();
    const hello = new Promise<void>((resolve, reject) => {
      helper.once('error', reject);
      helper.stdout.on('data', (chunk: Buffer) => {
        for (const ev of decoder.push(chunk)) {
          if (ev.type === 'started' && ev.id === 0) {
            this.helperVersion = ev.version;
            resolve();
          } else this.onEvent(ev);
        }
      });
      helper.once('exit', (code, signal) => {
        reject(new Error(`exited early (${signal ?? code})`));
        this.onHelperExit(helper, code, signal);
      });
    });
    helper.stdin.on('error', () => undefined); // EPIPE when it dies; the exit handler deals with that
    try {
      await hello;
      this.state = 'up';
      this.wasUp = true;
      this.restartDelay = RESTART_MIN_MS;
      this.warnedFallback = false;
      for (const wake of this.upWaiters.splice(0)) wake();
      this.log.info({ pid: helper.pid }, 'spawner helper ready');
    } catch (err) {
      this.log.warn({ err: (err as Error).message, path: this.path }, 'spawner helper failed to start; using child_process meanwhile');
      if (helper.exitCode === null) helper.kill('SIGKILL');
    }
  }

  private onEvent(ev: SpawnerEvent): void {
    if (ev.type === 'killed') {
      const kill = this.kills.get(ev.id);
      this.kills.delete(ev.id);
      kill?.done(ev.errno === 0 ? undefined : new Error(`killing the processes of uid ${kill.uid}: ${errnoText(ev.errno)}`));
      return;
    }
    const job = this.jobs.get(ev.id);
    if (!job) return;
    switch (ev.type) {
      case 'started':
        job.pid = ev.pid;
        job.started(this.process(ev.id, job));
        break;
      case 'failed':
        this.jobs.delete(ev.id);
        void job.cgroup?.remove().catch((err: unknown) => this.log.warn({ err }, 'removing a cgroup failed'));
        job.started({ pid: undefined, exited: Promise.resolve({ exitCode: null, signal: null, error: errnoText(ev.errno) }), signalGroup: () => undefined, setDeadline: () => undefined });
        break;
      case 'output':
        job.onOutput(ev.stream, ev.data);
        break;
      case 'exit': {
        this.jobs.delete(ev.id);
        job.deadline?.clear();
        const exit: ExecExit = {
          exitCode: ev.code >= 0 ? ev.code : null,
          signal: ev.signal ? (SIGNAL_NAMES.get(ev.signal) ?? String(ev.signal)) : null,
          usage: { userCpuMs: ev.userUs / 1000, systemCpuMs: ev.systemUs / 1000, maxRssKb: ev.maxRssKb },
        };
        if (ev.fenced || job.deadline?.fired) exit.fenced = true;
        if (!job.cgroup) job.exited(exit);
        else void this.finishCgroup(job.cgroup, exit).then(job.exited);
        break;
      }
    }
  }

  /** The cgroup's accounting joins the exit; then the cgroup goes. */
  private async finishCgroup(cgroup: AttemptCgroup, exit: ExecExit): Promise<ExecExit> {
    try {
      const stats = await cgroup.stats();
      exit.usage = { ...exit.usage!, ...stats.usage };
      if (stats.oomKilled) exit.oomKilled = true;
      await cgroup.remove();
    } catch (err) {
      this.log.warn({ err }, 'reading or removing a job cgroup failed');
    }
    return exit;
  }

  private process(id: number, job: Pending): ExecProcess {
    const exited = new Promise<ExecExit>((resolve) => (job.exited = resolve));
    const signal = (sig: NodeJS.Signals): void => {
      if (this.state === 'up' && this.jobs.has(id)) this.send(encodeSignal(id, constants.signals[sig]));
      else signalGroup(job.pid, sig);
    };
    // The helper keeps the deadline itself, so it fires even while the runner's event loop is stalled.
    const inHelper = this.helperVersion >= CONTAINMENT_VERSION;
    if (!inHelper) job.deadline = new DeadlineTimer(() => signal('SIGKILL'));
    const setDeadline = (ms: number): void => {
      if (!inHelper) job.deadline?.set(ms);
      else if (this.state === 'up' && this.jobs.has(id)) this.send(encodeDeadline(id, ms));
    };
    return { pid: job.pid, exited, signalGroup: signal, setDeadline };
  }

  /** Every job the helper held is reported lost and its group killed; then the helper is restarted with backoff. */
  private onHelperExit(helper: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (helper !== this.helper) return;
    this.helper = undefined;
    const wasClosed = this.state === 'closed';
    if (!wasClosed) this.state = 'down';
    const lost: ExecExit = { exitCode: null, signal: null, lost: true, error: `the spawner helper died (${signal ?? code})` };
    for (const [id, job] of this.jobs) {
      this.jobs.delete(id);
      signalGroup(job.pid, 'SIGKILL');
      // The guard kills them too; the runner does not count on it.
      void job.cgroup?.kill().then(() => job.cgroup?.remove()).catch((err: unknown) => this.log.warn({ err }, 'clearing a cgroup after the helper died failed'));
      if (job.pid === undefined) job.started({ pid: undefined, exited: Promise.resolve(lost), signalGroup: () => undefined, setDeadline: () => undefined });
      else job.exited(lost);
    }
    // Unanswered kills are done again without the helper: the uid's processes must be gone either way.
    for (const [id, kill] of this.kills) {
      this.kills.delete(id);
      this.fallback.killUid(kill.uid).then(() => kill.done(undefined), (err: Error) => kill.done(err));
    }
    if (wasClosed) return;
    this.log.warn({ code, signal, restartInMs: this.restartDelay }, 'spawner helper died; starts wait until it is back');
    this.restartTimer = setTimeout(() => void this.init(), this.restartDelay);
    this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
  }

  async start(request: ExecRequest, onOutput: (stream: OutputStreamName, chunk: Buffer) => void): Promise<ExecProcess> {
    if (this.state !== 'up' && this.wasUp && this.state !== 'closed') await this.helperBack(HELPER_WAIT_MS);
    if (this.state !== 'up' || !this.helper?.stdin?.writable) {
      if (this.wasUp) {
        const lost: ExecExit = { exitCode: null, signal: null, lost: true, error: `the spawner helper is not back after ${HELPER_WAIT_MS} ms` };
        return { pid: undefined, exited: Promise.resolve(lost), signalGroup: () => undefined, setDeadline: () => undefined };
      }
      if (!this.warnedFallback) this.log.warn('spawner helper unavailable: starting commands with child_process');
      this.warnedFallback = true;
      return this.fallback.start(request, onOutput);
    }
    return this.startInHelper(request, onOutput);
  }

  private helperBack(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.upWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async startInHelper(request: ExecRequest, onOutput: (stream: OutputStreamName, chunk: Buffer) => void): Promise<ExecProcess> {
    const id = this.nextId++;
    const argv = request.argv ?? ['/bin/sh', '-c', request.command ?? ''];
    const env = Object.entries(request.env).map(([k, v]) => `${k}=${v}`);
    const range = this.containment.jobUids;
    const ownUid = range !== undefined && request.uid !== undefined && request.uid >= range.first && request.uid <= range.last;
    const cgroups = this.helperVersion >= CONTAINMENT_VERSION ? this.containment.cgroups : undefined;
    const cgroup = cgroups ? await cgroups.create(request.label ?? 'job', request.resources) : undefined;
    const limits = [...(request.limits ?? []), ...this.rlimitFallback(request, ownUid, cgroups)];
    return new Promise<ExecProcess>((resolve) => {
      this.jobs.set(id, { onOutput, started: resolve, exited: () => undefined, pid: undefined, cgroup });
      this.send(encodeStart({
        id, uid: request.uid ?? -1, gid: request.gid ?? -1, groups: request.groups, cwd: request.cwd ?? '', argv, env,
        limits: limits.map((l) => ({ resource: RLIMIT[l.resource], soft: BigInt(l.value), hard: BigInt(l.value) })),
        ownUid, cgroups: cgroup?.dirs.map((d) => ({ version: d.version, dir: d.dir })),
      }));
    });
  }

  /**
   * Limits no cgroup controller enforces here, as rlimits where one fits: memory as address space (a failed
   * allocation rather than an OOM kill), processes as RLIMIT_NPROC (per uid: only for a job's own uid). CPUs have no
   * rlimit: said once.
   */
  private rlimitFallback(request: ExecRequest, ownUid: boolean, cgroups: RunnerCgroups | undefined): NonNullable<ExecRequest['limits']> {
    const r = request.resources;
    if (!r) return [];
    const out: NonNullable<ExecRequest['limits']> = [];
    if (r.memoryMb !== undefined && !cgroups?.controllers.memory) {
      const bytes = r.memoryMb * 1024 * 1024;
      const runnerAs = request.limits?.find((l) => l.resource === 'as')?.value;
      if (runnerAs === undefined || bytes < runnerAs) out.push({ resource: 'as', value: bytes });
    }
    if (r.pids !== undefined && !cgroups?.controllers.pids && ownUid) out.push({ resource: 'nproc', value: r.pids });
    if (r.cpus !== undefined && !cgroups?.controllers.cpu && !this.warnedCpu) {
      this.warnedCpu = true;
      this.log.warn('resources.cpus is not enforced on this runner: no cgroup cpu controller (see docs/containment.md)');
    }
    return out;
  }

  killUid(uid: number): Promise<void> {
    const problem = jobUidProblem(uid);
    if (problem) return Promise.reject(new Error(problem));
    if (this.state !== 'up' || !this.helper?.stdin?.writable || this.helperVersion < KILL_UID_VERSION) return this.fallback.killUid(uid);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.kills.set(id, { uid, done: (err) => (err ? reject(err) : resolve()) });
      this.send(encodeKillUid(id, uid));
    });
  }

  /** Frames written in the same tick leave in one write: a syscall per job is a real cost at thousands per second. */
  private send(frame: Buffer): void {
    const stdin = this.helper?.stdin;
    if (!stdin) return;
    if (!stdin.writableCorked) {
      stdin.cork();
      process.nextTick(() => stdin.uncork());
    }
    stdin.write(frame);
  }

  /** Closing the helper's stdin makes it kill whatever is left and exit. Idempotent. */
  async close(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.restartTimer);
    for (const wake of this.upWaiters.splice(0)) wake();
    const helper = this.helper;
    if (!helper || helper.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => helper.once('exit', () => resolve()));
    helper.stdin?.end();
    await exited;
  }
}
