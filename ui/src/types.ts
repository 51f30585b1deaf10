/** The API's records, as far as the dashboard reads them (see the OpenAPI document at /docs). */

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Attempt {
  attempt: number;
  runnerId: string;
  status: string;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  startedAt: string;
  finishedAt: string;
}

export interface Job {
  id: string;
  queue: string;
  status: string;
  command: string | null;
  argv: string[] | null;
  name: string | null;
  envKeys: string[];
  labels: Record<string, string>;
  cwd: string | null;
  timeoutMs: number | null;
  retries: number;
  attempts: number;
  runnerId: string | null;
  pid: number | null;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  createdAt: string;
  queuedAt: string | null;
  runAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  outputBytes: number;
  truncated: boolean;
  schedule: string | null;
  attemptHistory?: Attempt[];
}

export interface LogLine {
  id: string;
  stream: 'stdout' | 'stderr' | 'system';
  line: string;
  ts: string;
  attempt: number;
}

export interface LogPage extends Page<LogLine> {
  done: boolean;
  truncated: boolean;
}

export interface QueueView {
  name: string;
  settings: { paused: boolean; concurrency: number | null; rateLimit: { max: number; perMs: number } | null; dedupe: boolean; defaultTimeoutMs: number | null };
  counts: { waiting: number; delayed: number; queued: number; parked: number; running: number; lastHour: Record<string, number> };
  running: { id: string; command: string | null; argv: string[] | null; runnerId: string | null; startedAt: string | null }[];
  oldestQueuedAt: string | null;
}

export interface Schedule {
  name: string;
  cron: string;
  timezone: string;
  job?: Record<string, unknown>;
  workflow?: Record<string, unknown>;
  overlap: string;
  enabled: boolean;
  description: string;
  nextRunAt: string | null;
  lastRunAt: string | null;
  lastJobId: string | null;
  lastState: string | null;
}

export interface Runner {
  id: string;
  host: string | null;
  pid: number | null;
  version: string | null;
  queues: string[];
  concurrency: number | null;
  executor: string | null;
  running: string[];
  startedAt: string | null;
  lastHeartbeatAt: string;
  state: 'running' | 'draining' | 'offline';
  drainRequested: boolean;
}

export interface WorkflowStep {
  name: string;
  dependsOn: string[];
  state: string;
  jobId: string | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Workflow {
  id: string;
  name: string;
  state: string;
  createdAt: string;
  steps: WorkflowStep[];
}
