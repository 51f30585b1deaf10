/** The API's records, as far as the dashboard reads them (see the OpenAPI document at /docs). */
// Type-only imports: erased by the build, they keep the dashboard in step with the server's own records.
import type { AttemptRecord, JobRecord, LogEntry, QueueView as CoreQueueView, RunnerView, ScheduleRecord, StatsView, UnfiredRunItem } from '@drover/core';

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type Attempt = AttemptRecord;

/** A schedule's run: a job it fired, or a fire time that made none (skipped, misfired). */
export type ScheduleRun = JobRecord | UnfiredRunItem;
export const isUnfired = (r: ScheduleRun): r is UnfiredRunItem => 'kind' in r && r.kind === 'unfired';

/** GET /v1/jobs/:id adds the attempts. */
export type Job = JobRecord & { attemptHistory?: Attempt[] };

export type LogLine = LogEntry;

export interface LogPage extends Page<LogLine> {
  done: boolean;
  truncated: boolean;
}

export type QueueView = CoreQueueView;

export type Runner = RunnerView;

export type Schedule = ScheduleRecord;

/** Workflows and steps call it `status`, as jobs do; `state` is the older name, kept as an alias for a release. */
interface HasStatus {
  status?: string;
  state?: string;
}

export const statusOf = (x: HasStatus): string => x.status ?? x.state ?? 'unknown';

export interface WorkflowStep extends HasStatus {
  name: string;
  dependsOn: string[];
  jobId: string | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Workflow extends HasStatus {
  id: string;
  name: string;
  createdAt: string;
  steps: WorkflowStep[];
}

/** GET /v1/stats: the API's own per-minute (hour) or quarter-hour (day) aggregates. */
export type Stats = StatsView & { truncated: boolean };
export type StatsRange = StatsView['range'];
export type QueueStats = Stats['queues'][number];
