/** Job states and the transitions allowed between them: the one place these strings are spelled. */
export const JobStatus = {
  Waiting: 'waiting',
  Delayed: 'delayed',
  Queued: 'queued',
  Running: 'running',
  Succeeded: 'succeeded',
  Failed: 'failed',
  TimedOut: 'timed_out',
  Cancelled: 'cancelled',
  Lost: 'lost',
  /** Not started by its deadline (expiresAt / ttlMs): it never runs late. */
  Expired: 'expired',
} as const;

export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const JOB_STATUSES: readonly JobStatus[] = Object.values(JobStatus);

export const TERMINAL_STATUSES: readonly JobStatus[] = [
  JobStatus.Succeeded,
  JobStatus.Failed,
  JobStatus.TimedOut,
  JobStatus.Cancelled,
  JobStatus.Lost,
  JobStatus.Expired,
];

/**
 * Allowed transitions. `waiting` holds a job until its dependencies ended (`dependsOn`). `running -> queued|delayed` is a retry (attempts+1); `running -> lost` happens when the
 * runner's lease expires. `-> expired`: a job with a deadline that no attempt started by (a claim after it or the
 * scheduler's sweep ends it). The Lua scripts in store/scripts.ts enforce these; this table documents and tests them.
 */
export const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  waiting: ['queued', 'delayed', 'cancelled', 'expired'],
  delayed: ['queued', 'cancelled', 'expired'],
  queued: ['running', 'cancelled', 'expired'],
  running: ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'queued', 'delayed'],
  succeeded: [],
  failed: [],
  timed_out: [],
  cancelled: [],
  lost: [],
  expired: [],
};

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function isJobStatus(value: string): value is JobStatus {
  return (JOB_STATUSES as readonly string[]).includes(value);
}
