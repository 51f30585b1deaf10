import { Type, type Static } from 'typebox';
import { JobTemplate, QUEUE_NAME_PATTERN, normalizeJobSpec, type JobSpec, type SpecDefaults, type SpecProblem } from './job-spec.js';
import type { JobStatus } from './states.js';

const StepName = Type.String({ pattern: QUEUE_NAME_PATTERN, description: 'Letters, digits, `_ . -`, up to 64.' });

export const StepInput = Type.Object(
  {
    name: StepName,
    job: JobTemplate,
    dependsOn: Type.Optional(Type.Array(StepName, { maxItems: 64, uniqueItems: true, description: 'Steps that must succeed first.' })),
  },
  { additionalProperties: false },
);
export type StepInput = Static<typeof StepInput>;

/** Keeper's DAG of actions: POST /v1/workflows. */
export const WorkflowInput = Type.Object(
  {
    name: Type.String({ pattern: QUEUE_NAME_PATTERN }),
    steps: Type.Array(StepInput, { minItems: 1, maxItems: 200 }),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Most steps of one run running at once.' })),
  },
  { additionalProperties: false },
);
export type WorkflowInput = Static<typeof WorkflowInput>;

/** Duplicate names, unknown dependencies and cycles, each named; empty when the steps form a DAG. */
export function checkDag(steps: StepInput[]): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const names = new Set<string>();
  steps.forEach((s, i) => {
    if (names.has(s.name)) problems.push({ field: `steps/${i}/name`, message: `duplicate step "${s.name}"` });
    names.add(s.name);
    if (s.job.dependsOn !== undefined) problems.push({ field: `steps/${i}/job/dependsOn`, message: 'use the step\'s own dependsOn (step names)' });
  });
  steps.forEach((s, i) => {
    for (const d of s.dependsOn ?? []) if (!names.has(d)) problems.push({ field: `steps/${i}/dependsOn`, message: `unknown step "${d}"` });
  });
  if (problems.length > 0) return problems;
  const cycle = findCycle(steps);
  if (cycle) problems.push({ field: 'steps', message: `cycle: ${cycle.join(' -> ')}` });
  return problems;
}

function findCycle(steps: StepInput[]): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.name, s.dependsOn ?? []]));
  const state = new Map<string, 'open' | 'done'>();
  const visit = (name: string, path: string[]): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'open') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'open');
    for (const d of deps.get(name) ?? []) {
      const c = visit(d, [...path, name]);
      if (c) return c;
    }
    state.set(name, 'done');
    return undefined;
  };
  for (const s of steps) {
    const c = visit(s.name, []);
    if (c) return c;
  }
  return undefined;
}

/** Step names, every step after its dependencies. */
export function topoOrder(steps: StepInput[]): string[] {
  const deps = new Map(steps.map((s) => [s.name, s.dependsOn ?? []]));
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const d of deps.get(name) ?? []) visit(d);
    out.push(name);
  };
  for (const s of steps) visit(s.name);
  return out;
}

/** The given steps and everything downstream of them. */
export function withDescendants(steps: StepInput[], from: Iterable<string>): Set<string> {
  const out = new Set(from);
  for (let grew = true; grew; ) {
    grew = false;
    for (const s of steps) {
      if (!out.has(s.name) && (s.dependsOn ?? []).some((d) => out.has(d))) {
        out.add(s.name);
        grew = true;
      }
    }
  }
  return out;
}

/** What starting (or restarting) a workflow's steps comes to: the jobs, in dependency order, and their ids per step. */
export interface WorkflowPlan {
  jobs: { id: string; spec: JobSpec; replica?: { index: number; of: string }; workflow?: { id: string; concurrency: number } }[];
  fresh: Record<string, string[]>;
}

/**
 * Jobs for the steps in `rerun`, in dependency order, each depending on its parents' jobs: the new ones of parents
 * that run again, the existing ones (`current`) otherwise, so a parent that succeeded is met at once. Steps with
 * replicas get one job per copy; a dependent waits for all copies. `newId` makes the ids (ULIDs).
 */
export function planWorkflow(
  workflowId: string,
  steps: StepInput[],
  rerun: Set<string>,
  current: Record<string, string[]>,
  defaults: SpecDefaults,
  newId: () => string,
  concurrency?: number,
): WorkflowPlan {
  const jobs: WorkflowPlan['jobs'] = [];
  const fresh: Record<string, string[]> = {};
  const byName = new Map(steps.map((s) => [s.name, s]));
  for (const name of topoOrder(steps)) {
    if (!rerun.has(name)) continue;
    const s = byName.get(name)!;
    const parents = (s.dependsOn ?? []).flatMap((d) => fresh[d] ?? current[d] ?? []);
    const spec = normalizeJobSpec({ ...s.job, ...(parents.length > 0 ? { dependsOn: parents } : {}) }, defaults);
    spec.labels = { ...spec.labels, 'drover.workflow': workflowId, 'drover.step': name };
    const n = spec.replicas ?? 1;
    const ids = Array.from({ length: n }, () => newId());
    const limit = concurrency !== undefined ? { workflow: { id: workflowId, concurrency } } : {};
    ids.forEach((id, index) => jobs.push({ id, spec, ...limit, ...(n > 1 ? { replica: { index, of: ids[0]! } } : {}) }));
    fresh[name] = ids;
  }
  return { jobs, fresh };
}

/**
 * What a step can be: its jobs' statuses (`delayed` counts as `queued`; `expired`: a job's deadline passed before it
 * started), `skipped` (cancelled because a dependency failed) and `purged` (its jobs passed their retention,
 * DROVER_RETENTION_FINISHED, and were deleted: how they ended is no longer known).
 */
export const STEP_STATUSES = ['waiting', 'queued', 'running', 'succeeded', 'failed', 'timed_out', 'lost', 'expired', 'cancelled', 'skipped', 'purged'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** What a workflow run can be, from its steps. */
export const WORKFLOW_STATUSES = ['running', 'succeeded', 'failed', 'cancelled', 'purged'] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

/** Steps whose failure a restart with mode "failed" runs again (with their descendants). */
export const FAILED_STEP_STATUSES: readonly StepStatus[] = ['failed', 'timed_out', 'lost', 'expired', 'cancelled', 'skipped'];

/** A step's status from its jobs (all copies): the least advanced copy decides, a failure before a cancellation. */
export function stepStatus(jobs: { status: JobStatus; error: string | null }[]): StepStatus {
  if (jobs.length === 0) return 'purged';
  const statuses = jobs.map((j): StepStatus => {
    if (j.status === 'cancelled' && j.error?.startsWith('dependency ')) return 'skipped';
    if (j.status === 'delayed') return 'queued';
    return j.status;
  });
  for (const s of ['running', 'queued', 'waiting', 'failed', 'timed_out', 'lost', 'expired', 'cancelled', 'skipped'] as const) if (statuses.includes(s)) return s;
  return 'succeeded';
}

/** A workflow's status from its steps': running while any step is unfinished, else how it ended. */
export function workflowStatus(steps: StepStatus[]): WorkflowStatus {
  if (steps.some((s) => s === 'running' || s === 'queued' || s === 'waiting')) return 'running';
  if (steps.includes('purged')) return 'purged';
  if (steps.every((s) => s === 'succeeded')) return 'succeeded';
  if (steps.some((s) => s === 'failed' || s === 'timed_out' || s === 'lost' || s === 'expired')) return 'failed';
  return 'cancelled';
}
