import { Type, type Static } from 'typebox';
import { JobTemplate, QUEUE_NAME_PATTERN } from './job-spec.js';
import { StepInput } from './workflow.js';

export const SCHEDULE_NAME_PATTERN = QUEUE_NAME_PATTERN;
export const ScheduleName = Type.String({ pattern: SCHEDULE_NAME_PATTERN, description: 'Letters, digits, `_ . -`, up to 64.' });

const fields = {
  cron: Type.String({
    minLength: 1,
    maxLength: 256,
    description: '5 fields (minute hour day month weekday), 6 with seconds first, or a macro such as @hourly.',
  }),
  timezone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone, e.g. Europe/Berlin. Default UTC.' }),
  job: JobTemplate,
  workflow: Type.Object(
    {
      steps: Type.Array(StepInput, { minItems: 1, maxItems: 200 }),
      concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Most steps of one run running at once.' })),
    },
    { additionalProperties: false, description: 'Instead of `job`: each fire starts a run of this workflow (GET /v1/workflows).' },
  ),
  overlap: Type.Union([Type.Literal('allow'), Type.Literal('skip'), Type.Literal('replace')], {
    description: 'While a run is still going: start another (allow), skip this fire (skip), or cancel the running one first (replace).',
  }),
  misfire: Type.Union([Type.Literal('skip'), Type.Literal('run-once')], {
    description: 'Fire times missed while no scheduler ran: fire nothing for them (skip), or fire once (run-once).',
  }),
  enabled: Type.Boolean(),
  description: Type.String({ maxLength: 1024 }),
  alertAfterFailures: Type.Union([Type.Integer({ minimum: 1, maximum: 1000 }), Type.Null()], {
    description: 'Emit `schedule.failing` once when this many runs in a row failed, and `schedule.recovered` after the next success.',
  }),
};

export const ScheduleInput = Type.Object(
  {
    name: ScheduleName,
    cron: fields.cron,
    job: Type.Optional(fields.job),
    workflow: Type.Optional(fields.workflow),
    timezone: Type.Optional(fields.timezone),
    overlap: Type.Optional(fields.overlap),
    misfire: Type.Optional(fields.misfire),
    enabled: Type.Optional(fields.enabled),
    description: Type.Optional(fields.description),
    alertAfterFailures: Type.Optional(fields.alertAfterFailures),
  },
  { additionalProperties: false },
);
export type ScheduleInput = Static<typeof ScheduleInput>;

/** PUT: the fields given replace the schedule's; the others stay. */
export const ScheduleUpdate = Type.Partial(Type.Omit(ScheduleInput, ['name']), { additionalProperties: false });
export type ScheduleUpdate = Static<typeof ScheduleUpdate>;

/** The stored definition (everything but the name and the enabled flag, which live beside it). */
export interface ScheduleDef {
  cron: string;
  timezone: string;
  /** What each fire runs: one job, or (instead) a workflow run. */
  job?: JobTemplate;
  workflow?: { steps: StepInput[]; concurrency?: number };
  overlap: 'allow' | 'skip' | 'replace';
  misfire: 'skip' | 'run-once';
  description: string;
  alertAfterFailures: number | null;
}

export interface ScheduleRecord extends ScheduleDef {
  name: string;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  nextRunAt: string | null;
  lastRunAt: string | null;
  lastJobId: string | null;
  lastState: string | null;
  lastDurationMs: number | null;
  consecutiveFailures: number;
  lastMisfireAt: string | null;
  runningJobs: string[];
}

export function scheduleDefaults(input: ScheduleInput): ScheduleDef {
  return {
    cron: input.cron,
    timezone: input.timezone ?? 'UTC',
    ...(input.job ? { job: input.job } : {}),
    ...(input.workflow ? { workflow: input.workflow } : {}),
    overlap: input.overlap ?? 'allow',
    misfire: input.misfire ?? 'run-once',
    description: input.description ?? '',
    alertAfterFailures: input.alertAfterFailures ?? null,
  };
}

const iso = (ms: string | undefined): string | null => (ms ? new Date(Number(ms)).toISOString() : null);

export function scheduleFromHash(name: string, h: Record<string, string>, running: string[]): ScheduleRecord {
  const def = JSON.parse(h.def ?? '{}') as ScheduleDef;
  return {
    name,
    ...def,
    alertAfterFailures: def.alertAfterFailures ?? null,
    enabled: h.enabled === '1',
    createdAt: iso(h.createdAt) ?? new Date(0).toISOString(),
    updatedAt: iso(h.updatedAt) ?? new Date(0).toISOString(),
    nextRunAt: h.enabled === '1' ? iso(h.nextRunAt) : null,
    lastRunAt: iso(h.lastRunAt),
    lastJobId: h.lastJobId || null,
    lastState: h.lastState || null,
    lastDurationMs: h.lastDurationMs ? Number(h.lastDurationMs) : null,
    consecutiveFailures: Number(h.consecutiveFailures ?? 0),
    lastMisfireAt: iso(h.lastMisfireAt),
    runningJobs: running.sort(),
  };
}
