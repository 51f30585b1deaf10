import { DEFAULT_DAEMON_INTERVAL_MS, DEFAULT_MAX_LOST, DEFAULT_RESTART_BACKOFF_MAX_MS, priorityOf, type JobSpec } from './job-spec.js';
import type { JobConstraints } from './placement.js';
import type { JobResources } from './resources.js';
import type { JobStatus } from './states.js';

/** Version of the persisted hash layout; bump with a migration when fields change meaning. */
export const RECORD_VERSION = 1;

/** CPU time and peak memory of the last attempt's command, where the executor measures them. */
export interface ResourceUsage {
  userCpuMs: number;
  systemCpuMs: number;
  /** Peak resident set of the largest single process the executor waited for (getrusage). */
  maxRssKb: number;
  /** Peak memory of the whole attempt, every process counted, from its cgroup (absent without one). */
  peakMemoryBytes?: number;
  /** CPU time of the whole attempt, every process counted, from its cgroup (absent without one). */
  cpuMs?: number;
}

/** What the API returns for a job. Times are ISO 8601 with milliseconds; absent facts are null. */
export interface JobRecord {
  id: string;
  queue: string;
  status: JobStatus;
  command: string | null;
  argv: string[] | null;
  args: string[];
  user: string | null;
  group: string | null;
  /** Names only: values may hold secrets and are never returned. */
  envKeys: string[];
  cwd: string | null;
  timeoutMs: number | null;
  /** job.slow fires once an attempt has run this long (the job keeps running). */
  alertAfterMs: number | null;
  /** When the latest job.slow alert fired (its event names the attempt); null if none did. */
  slowAt: string | null;
  retries: number;
  backoff: JobSpec['backoff'];
  onLost: JobSpec['onLost'];
  /** Lost attempts run again with onLost "retry"; null for a daemon (restarted after every loss). */
  maxLost: number | null;
  /** Attempts that were lost (runner died, shut down, fenced), and attempts that failed or timed out. */
  lostCount: number;
  failureCount: number;
  labels: Record<string, string>;
  attempts: number;
  runnerId: string | null;
  pid: number | null;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  createdAt: string;
  queuedAt: string | null;
  runAt: string | null;
  /** When a runner took the latest attempt (startedAt is when its process started). */
  claimedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  outputBytes: number;
  truncated: boolean;
  /** How far the job says it is, 0..100 (`::drover progress`, its progress file); null: it did not say. */
  progress: number | null;
  /** The small JSON result it reported (`::drover result`, its result file); null: none. */
  result: unknown;
  cancelRequested: boolean;
  usage: ResourceUsage | null;
  /** The limits the job asked for (its attempts also get the queue default and the runner's maximum for the rest). */
  resources: JobResources | null;
  /** The schedule that fired this job, and the fire time it was for. */
  schedule: string | null;
  scheduledFor: string | null;
  type: 'once' | 'daemon';
  intervalMs: number | null;
  /** Daemons: the backoff cap, the restart limit (null: none) and the restarts so far (after its own exits). */
  restartBackoffMaxMs: number | null;
  maxRestarts: number | null;
  restarts: number;
  replicas: number;
  replica: number;
  replicaOf: string | null;
  dependsOn: string[];
  name: string | null;
  dedupeKey: string | null;
  /** A script job's script, by hash and size (the body is not returned). */
  script: { sha256: string; bytes: number; interpreter: string } | null;
  files: { path: string; bytes: number }[];
  /** Where it may run; null: anywhere. */
  constraints: JobConstraints | null;
  /** While a queued job waits for a runner that satisfies its constraints (one that does not declined it); else null. */
  placement: JobPlacement | null;
  /** 1 (least urgent) to 10 (most urgent); 5 unless the job set it. */
  priority: number;
  /** The deadline: an attempt not started by then is not started (the job ends `expired`); null: none. */
  expiresAt: string | null;
}

/** Why a queued job waits: runners that do not satisfy its constraints declined it. */
export interface JobPlacement {
  /** Since when it waits for a runner that satisfies its constraints. */
  waitingSince: string;
  /** The last runner that declined it. */
  declinedBy: string | null;
  /** How often runners declined it while it waited (each delivery to one that does not satisfy it counts once). */
  declines: number;
  reason: string;
}

/** One finished attempt, kept in the job's attempts list. */
export interface AttemptRecord {
  attempt: number;
  runnerId: string;
  status: JobStatus;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  startedAt: string;
  finishedAt: string;
}

const iso = (ms: string | undefined): string | null => (ms ? new Date(Number(ms)).toISOString() : null);
const int = (v: string | undefined): number | null => (v === undefined || v === '' ? null : Number(v));
const str = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

/** Converts the stored hash (all strings, times in epoch ms) into the wire record. */
export function recordFromHash(h: Record<string, string>): JobRecord {
  const spec = JSON.parse(h.spec ?? '{}') as JobSpec;
  return {
    id: h.id ?? '',
    queue: h.queue ?? spec.queue,
    status: h.status as JobStatus,
    command: spec.command ?? null,
    argv: spec.argv ?? null,
    args: spec.args ?? [],
    user: spec.user ?? null,
    group: spec.group ?? null,
    envKeys: Object.keys(spec.env ?? {}),
    cwd: spec.cwd ?? null,
    timeoutMs: spec.timeoutMs ?? null,
    alertAfterMs: spec.alertAfterMs ?? null,
    slowAt: h.slowAt ? new Date(Number(h.slowAt)).toISOString() : null,
    retries: spec.retries,
    backoff: spec.backoff,
    onLost: spec.onLost,
    maxLost: spec.type === 'daemon' ? null : (spec.maxLost ?? DEFAULT_MAX_LOST),
    lostCount: Number(h.lostCount ?? 0),
    failureCount: Number(h.failureCount ?? 0),
    labels: spec.labels ?? {},
    attempts: Number(h.attempts ?? 0),
    runnerId: str(h.runnerId),
    pid: int(h.pid),
    exitCode: int(h.exitCode),
    signal: str(h.signal),
    error: str(h.error),
    createdAt: iso(h.createdAt) ?? new Date(0).toISOString(),
    queuedAt: iso(h.queuedAt),
    runAt: iso(h.runAt),
    claimedAt: iso(h.claimedAt),
    startedAt: iso(h.startedAt),
    finishedAt: iso(h.finishedAt),
    outputBytes: Number(h.outputBytes ?? 0),
    truncated: h.truncated === '1',
    progress: h.progress ? Number(h.progress) : null,
    result: h.result ? (JSON.parse(h.result) as unknown) : null,
    cancelRequested: h.cancelRequested === '1',
    usage: h.usage ? (JSON.parse(h.usage) as ResourceUsage) : null,
    resources: spec.resources ?? null,
    schedule: str(h.schedule),
    scheduledFor: iso(h.scheduledFor),
    type: spec.type ?? 'once',
    intervalMs: spec.type === 'daemon' ? (spec.intervalMs ?? DEFAULT_DAEMON_INTERVAL_MS) : null,
    restartBackoffMaxMs: spec.type === 'daemon' ? (spec.restartBackoffMaxMs ?? DEFAULT_RESTART_BACKOFF_MAX_MS) : null,
    maxRestarts: spec.type === 'daemon' ? (spec.maxRestarts ?? null) : null,
    restarts: Number(h.restarts ?? 0),
    replicas: spec.replicas ?? 1,
    replica: Number(h.replica ?? 0),
    replicaOf: str(h.replicaOf),
    dependsOn: spec.dependsOn ?? [],
    name: spec.name ?? null,
    dedupeKey: str(h.dedupeKey),
    script: spec.script !== undefined ? { sha256: spec.scriptSha256 ?? '', bytes: Buffer.byteLength(spec.script), interpreter: spec.interpreter ?? 'sh' } : null,
    files: Object.entries(spec.files ?? {}).map(([path, c]) => ({ path, bytes: typeof c === 'string' ? Buffer.byteLength(c) : Buffer.byteLength(c.base64, 'base64') })),
    constraints: spec.constraints ?? null,
    placement: placementOf(h),
    priority: priorityOf(spec),
    expiresAt: iso(h.expiresAt),
  };
}

function placementOf(h: Record<string, string>): JobPlacement | null {
  if (!h.placedIn || h.status !== 'queued') return null;
  const declinedBy = str(h.placedBy);
  return {
    waitingSince: iso(h.placedAt) ?? new Date(0).toISOString(),
    declinedBy,
    declines: Number(h.placementDeclines ?? 0),
    reason: `${declinedBy ? `runner ${declinedBy}` : 'a runner'} does not satisfy its constraints; it waits for a live runner of queue ${h.queue ?? ''} that does`,
  };
}
