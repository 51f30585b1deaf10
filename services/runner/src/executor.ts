import { spawn } from 'node:child_process';
import { MAX_JOB_UID, MIN_JOB_UID, type ResourceUsage } from '@drover/core';

/** What to start. Exactly one of `command` (run by /bin/sh -c) or `argv` (no shell). */
export interface ExecRequest {
  command?: string;
  argv?: string[];
  /** The complete environment of the child: nothing is inherited implicitly. */
  env: Record<string, string>;
  cwd?: string;
  /** Run as this user and group (numeric; set only from the runner's job user or allow-list). */
  uid?: number;
  gid?: number;
  /**
   * Supplementary groups (initgroups of the job's user). Only the spawner helper sets them: Node's spawn drops every
   * supplementary group when it switches ids, so under child_process a job runs with its primary group alone.
   */
  groups?: number[];
  /** Resource limits applied in the child before exec (only the spawner helper can; see README). */
  limits?: { resource: 'nofile' | 'as' | 'nproc'; value: number }[];
  /**
   * The attempt's own limits, already capped by the runner's maxima: enforced by the attempt's cgroup where the
   * runner has one, else by rlimits where one fits (see docs/containment.md).
   */
  resources?: JobResources;
  /** Names the attempt's cgroup, so leftovers of a dead runner can be told apart (job id and attempt). */
  label?: string;
}

/** Per-attempt limits: memory in MiB, CPUs as a fraction of cores (0.5 = half a core), processes and threads. */
export interface JobResources {
  memoryMb?: number;
  cpus?: number;
  pids?: number;
}

export type OutputStreamName = 'stdout' | 'stderr';

export interface ExecExit {
  exitCode: number | null;
  signal: string | null;
  /** Set when the process could not be started at all (bad cwd, program not found). */
  error?: string;
  /** The executor lost track of the process (its helper died); the process group was killed. */
  lost?: boolean;
  /** CPU time and peak memory of the command, where the executor can measure them. */
  usage?: ResourceUsage;
  /** The kernel killed a process of the attempt for exceeding its memory limit (cgroup OOM kill). */
  oomKilled?: boolean;
  /** The executor killed the attempt because its deadline passed unrenewed (see ExecProcess.setDeadline). */
  fenced?: boolean;
}

export interface ExecProcess {
  /** Process id of the direct child, which is also its process group id. */
  readonly pid: number | undefined;
  /** Resolves when the child exited, leftovers in its group were killed and its output was read to the end. */
  readonly exited: Promise<ExecExit>;
  /** Sends a signal to the child's whole process group. */
  signalGroup(signal: NodeJS.Signals): void;
  /**
   * Dead man's switch: unless called again within `ms`, the executor kills the whole attempt (SIGKILL) and its
   * exit says `fenced`. The runner calls it after every successful lease renewal, so an attempt whose lease can no
   * longer be renewed stops before the lease expires. Each call replaces the previous deadline.
   */
  setDeadline(ms: number): void;
}

/** Launches commands as the leader of a new process group, so the runner's own signals never reach them. */
export interface Executor {
  readonly name: string;
  /** How a job's processes are held together, so that they end together (see docs/containment.md). */
  readonly containmentMode: string;
  /** Resolves once the process exists (or failed to start: then `exited` says why). */
  start(request: ExecRequest, onOutput: (stream: OutputStreamName, chunk: Buffer) => void): Promise<ExecProcess>;
  /**
   * Kills every process that runs as `uid`, setsid or not: kill(-1, SIGKILL) from a process of that uid, which
   * reaches exactly the processes of that uid. Only for uids that belong to one job (RUNNER_JOB_UIDS).
   */
  killUid(uid: number): Promise<void>;
  close(): Promise<void>;
}

/** killUid of root or a system uid would kill the system's own processes: refused before anything is started. */
export function jobUidProblem(uid: number): string | undefined {
  return Number.isInteger(uid) && uid >= MIN_JOB_UID && uid <= MAX_JOB_UID ? undefined : `refusing to kill the processes of uid ${uid}: not a job uid`;
}

/** How long to keep reading a child's pipes after it exited, when an escaped grandchild holds them open. */
const PIPE_LINGER_MS = 2000;

export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/**
 * A deadline kept by a timer in the runner. It cannot fire while the runner's event loop is stalled; the spawner
 * helper keeps the deadline in its own process instead, where it can (see spawner.c).
 */
export class DeadlineTimer {
  private timer: NodeJS.Timeout | undefined;
  fired = false;

  constructor(private readonly kill: () => void) {}

  private done = false;

  set(ms: number): void {
    clearTimeout(this.timer);
    // After the process ended its group id may belong to someone else: a late renewal must arm nothing.
    if (this.fired || this.done) return;
    this.timer = setTimeout(() => {
      this.fired = true;
      this.kill();
    }, Math.max(0, ms));
    this.timer.unref();
  }

  /** The process ended: for good. */
  clear(): void {
    this.done = true;
    clearTimeout(this.timer);
  }
}

/**
 * The portable executor, built on node:child_process. It forks the runner on the event loop thread, which is
 * costly for a large runner; it is the baseline and the fallback of the faster executors.
 */
export class ChildProcessExecutor implements Executor {
  readonly name = 'child_process';
  /** Node cannot put a child in a cgroup before exec, nor reap orphans: the process group only. */
  readonly containmentMode = 'process-group';

  async start(request: ExecRequest, onOutput: (stream: OutputStreamName, chunk: Buffer) => void): Promise<ExecProcess> {
    const [file, args] = request.argv ? [request.argv[0]!, request.argv.slice(1)] : ['/bin/sh', ['-c', request.command ?? '']];
    const child = spawn(file, args, {
      cwd: request.cwd,
      ...(request.uid !== undefined ? { uid: request.uid } : {}),
      ...(request.gid !== undefined ? { gid: request.gid } : {}),
      env: request.env,
      // A new session: own process group, no controlling terminal, out of reach of the runner's signals.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (c: Buffer) => onOutput('stdout', c));
    child.stderr?.on('data', (c: Buffer) => onOutput('stderr', c));
    const pid = child.pid;
    const deadline = new DeadlineTimer(() => signalGroup(pid, 'SIGKILL'));

    const exited = new Promise<ExecExit>((resolve) => {
      let spawnError: string | undefined;
      child.once('error', (err) => {
        spawnError = err.message;
        if (child.pid === undefined) resolve({ exitCode: null, signal: null, error: err.message });
      });
      child.once('exit', (code, signal) => {
        // Background processes the command left in its group die with it.
        signalGroup(pid, 'SIGKILL');
        deadline.clear();
        const result: ExecExit = { exitCode: code, signal };
        if (spawnError) result.error = spawnError;
        if (deadline.fired) result.fenced = true;
        const linger = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          resolve(result);
        }, PIPE_LINGER_MS);
        child.once('close', () => {
          clearTimeout(linger);
          resolve(result);
        });
      });
    });
    return { pid, exited, signalGroup: (sig) => signalGroup(pid, sig), setDeadline: (ms) => deadline.set(ms) };
  }

  /** A shell of that uid runs kill -KILL -1 (the shell itself is spared; "no such process" is success). */
  killUid(uid: number): Promise<void> {
    const problem = jobUidProblem(uid);
    if (problem) return Promise.reject(new Error(problem));
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', 'kill -KILL -1 2>/dev/null; exit 0'], { uid, gid: uid, env: {}, stdio: 'ignore' });
      child.once('error', (err) => reject(new Error(`killing the processes of uid ${uid}: ${err.message}`)));
      child.once('exit', (code, signal) => {
        if (code === 0) resolve();
        else reject(new Error(`killing the processes of uid ${uid}: the shell ended ${signal ?? `with ${code}`}`));
      });
    });
  }

  async close(): Promise<void> {}
}
