import { DroverError, firePayload, isJobId, type JobRecord, type ScheduleDef, type ScheduleRecord, type WorkflowRecord } from '@drover/core';
import type { Principal } from '../../auth.js';
import type { ApiContext } from '../../context.js';
import { copiesOf, stopJobs } from '../../job-actions.js';
import { workflowQueues } from '../../queue-scope.js';
import { assertSubmittable } from '../jobs.js';
import { defSpecs, triggerSchedule } from '../schedules.js';

/**
 * Keeper's task (任务): one run of a job (a schedule). A workflow run is its record (the task id is the workflow's
 * id); a plain schedule's run is its job and that job's replicas (the task id is the first copy's id).
 */
export type KeeperTask =
  | { kind: 'workflow'; id: string; schedule: string | null; wf: WorkflowRecord }
  | { kind: 'job'; id: string; schedule: string; copies: JobRecord[] };

export const noTask = (id: string): DroverError => new DroverError('NOT_FOUND', `no task ${id}`);
export const noJob = (name: string): DroverError => new DroverError('NOT_FOUND', `no job ${name} (a Keeper job is a Drover schedule)`);

/** The task with this id, or null: a workflow run, or the first job of a plain schedule's run. */
export async function findTask(ctx: ApiContext, id: string): Promise<KeeperTask | null> {
  if (!isJobId(id)) return null;
  const wf = await ctx.workflows.get(id);
  if (wf) return { kind: 'workflow', id, schedule: wf.schedule ?? null, wf };
  const job = await ctx.store.get(id);
  // A workflow's step is an action, a later copy is part of its first copy's task, a job of no schedule is no task.
  if (!job?.schedule || job.labels['drover.workflow'] || (job.replicaOf !== null && job.replicaOf !== job.id)) return null;
  return { kind: 'job', id, schedule: job.schedule, copies: await copiesOf(ctx, job) };
}

/** The queues a task's jobs run in (what a restricted token must be allowed). */
export function taskQueues(task: KeeperTask): string[] {
  return task.kind === 'workflow' ? workflowQueues(task.wf.steps) : [...new Set(task.copies.map((j) => j.queue))];
}

/** The task's current actions: each step's latest jobs, or the job's copies. */
export function currentActions(task: KeeperTask): string[] {
  return task.kind === 'workflow' ? task.wf.steps.flatMap((s) => task.wf.jobs[s.name] ?? []) : task.copies.map((j) => j.id);
}

/** Every action the task ever ran, oldest run first: a restart in the same record adds to its output. */
export function allActions(task: KeeperTask): string[] {
  if (task.kind === 'job') return currentActions(task);
  const ids = new Set<string>();
  for (const run of task.wf.runs) for (const s of task.wf.steps) for (const id of run.steps[s.name] ?? []) ids.add(id);
  for (const id of currentActions(task)) ids.add(id);
  return [...ids];
}

/** Stops the jobs (queued ones never start, running ones get SIGTERM then SIGKILL); returns those that were running. */
export async function killJobs(ctx: ApiContext, ids: string[]): Promise<string[]> {
  return (await stopJobs(ctx, ids)).flagged;
}

export { scheduleJobs } from '../../job-actions.js';

/**
 * A new run of the schedule now, or after `delayMs` (delayed until then; a workflow's first steps wait as delayed),
 * as the native trigger makes it; `ignoreDeps` leaves the job's dependsOn out. Returns the new task's id.
 */
export async function runNow(ctx: ApiContext, s: ScheduleRecord, opts: { delayMs: number; ignoreDeps: boolean }, principal: Principal | undefined): Promise<string> {
  if (opts.delayMs > ctx.maxDelayMs) throw new DroverError('VALIDATION', `delay: more than DROVER_MAX_DELAY_MS (${ctx.maxDelayMs} ms) allows`);
  let def: ScheduleDef = s;
  if (opts.ignoreDeps && s.job?.dependsOn) {
    const job = { ...s.job };
    delete job.dependsOn;
    def = { ...s, job };
  }
  for (const { spec, field } of defSpecs(def)) assertSubmittable(ctx, principal, spec, field);
  const now = Date.now();
  const payload = firePayload(s.name, def, now);
  if (!(await triggerSchedule(ctx, s.name, payload, opts.delayMs > 0 ? now + opts.delayMs : null, now))) throw noJob(s.name);
  return payload.bundle ? (JSON.parse(payload.bundle) as { workflowId: string }).workflowId : payload.jobIds[0]!;
}
