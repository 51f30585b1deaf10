import { Type, type Static } from 'typebox';
import { JobTemplate, QUEUE_NAME_PATTERN, type SpecProblem } from './job-spec.js';

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
