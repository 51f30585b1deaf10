import { Type, type Static } from 'typebox';

/** Bounds of one limit: below them nothing useful runs (4 MiB, 1/100 of a core, one process); above, a unit mistake. */
export const RESOURCE_BOUNDS = {
  memoryMb: { minimum: 4, maximum: 1_048_576 },
  cpus: { minimum: 0.01, maximum: 1024 },
  pids: { minimum: 1, maximum: 4_194_304 },
} as const;

/** Per-job limits (Nomad's `resources`): on jobs, schedules, workflow steps, and as a queue's default. */
export const Resources = Type.Object(
  {
    memoryMb: Type.Optional(
      Type.Integer({ ...RESOURCE_BOUNDS.memoryMb, description: 'Memory of the whole attempt, every process counted, in MiB. Past it the kernel kills it (failed, "out of memory").' }),
    ),
    cpus: Type.Optional(Type.Number({ ...RESOURCE_BOUNDS.cpus, description: 'CPU time as a share of cores: 0.5 is half a core, 2 two cores.' })),
    pids: Type.Optional(Type.Integer({ ...RESOURCE_BOUNDS.pids, description: 'Processes and threads the attempt may have at once.' })),
  },
  {
    additionalProperties: false,
    description: 'Limits of each attempt, enforced by its cgroup (rlimits where the runner has none). Unset fields: the queue default, else the runner maximum.',
  },
);

/** Per-attempt limits: memory in MiB, CPUs as a share of cores, processes and threads. */
export type JobResources = Static<typeof Resources>;

export type ResourceName = keyof JobResources;
const NAMES: readonly ResourceName[] = ['memoryMb', 'cpus', 'pids'];

/** The runner variable that caps each limit. */
export const RESOURCE_MAXIMUM_VARIABLES: Readonly<Record<ResourceName, string>> = {
  memoryMb: 'RUNNER_MAX_JOB_MEMORY_MB',
  cpus: 'RUNNER_MAX_JOB_CPUS',
  pids: 'RUNNER_MAX_JOB_PIDS',
};

/** The limits an attempt runs with, or why this runner will not run it at all. */
export type EffectiveResources =
  | {
      resources: JobResources;
      /** Queue defaults above this runner's maximum, cut down to it (the maximum is the most any job gets here). */
      capped: { name: ResourceName; queueDefault: number; max: number }[];
    }
  | { refusal: string };

/**
 * The limits of one attempt, field by field: the job's own, else its queue's default, else the runner's maximum, so
 * no job on a runner exceeds its maximum. A job that asks for more than the maximum is refused (with every such
 * field named): it would be refused the same way on every attempt. A queue default above the maximum is capped
 * instead: the default applies to runners of every size, the job itself asked for nothing.
 */
export function effectiveResources(job: JobResources | undefined, queueDefault: JobResources | undefined, maxima: JobResources): EffectiveResources {
  const resources: JobResources = {};
  const capped: { name: ResourceName; queueDefault: number; max: number }[] = [];
  const over: string[] = [];
  for (const name of NAMES) {
    const max = maxima[name];
    const asked = job?.[name];
    const fallback = queueDefault?.[name];
    if (asked !== undefined && max !== undefined && asked > max) {
      over.push(`resources.${name} ${asked} is more than this runner allows (${RESOURCE_MAXIMUM_VARIABLES[name]}=${max})`);
      continue;
    }
    if (asked === undefined && fallback !== undefined && max !== undefined && fallback > max) capped.push({ name, queueDefault: fallback, max });
    const value = asked ?? (fallback !== undefined ? Math.min(fallback, max ?? Infinity) : max);
    if (value !== undefined) resources[name] = value;
  }
  if (over.length > 0) return { refusal: over.join('; ') };
  return { resources, capped };
}

/** A stored resources object, or undefined when the text is empty or not one (a hand-edited hash must not break a claim). */
export function parseResources(text: string | undefined): JobResources | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    const out: JobResources = {};
    for (const name of NAMES) {
      const n = (v as Record<string, unknown>)[name];
      if (typeof n === 'number' && Number.isFinite(n) && n > 0) out[name] = n;
    }
    return Object.keys(out).length > 0 ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A runner maximum from its variable's text: a positive number within the field's bounds, `0` or empty for none.
 * Returns the problem in words otherwise.
 */
export function parseResourceMaximum(name: ResourceName, text: string | undefined): number | undefined | string {
  if (text === undefined || text.trim() === '') return undefined;
  const t = text.trim();
  const variable = RESOURCE_MAXIMUM_VARIABLES[name];
  const decimal = name === 'cpus';
  if (!(decimal ? /^\d+(\.\d+)?$/ : /^\d+$/).test(t)) return `${variable} must be ${decimal ? 'a number such as 1.5' : 'a whole number'}, got "${text}"`;
  const n = Number(t);
  if (n === 0) return undefined;
  const { minimum, maximum } = RESOURCE_BOUNDS[name];
  if (n < minimum || n > maximum) return `${variable} must be 0 (no maximum) or between ${minimum} and ${maximum}, got ${t}`;
  return n;
}
