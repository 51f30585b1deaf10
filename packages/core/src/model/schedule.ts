import { Type, type Static } from 'typebox';
import { JobTemplate, QUEUE_NAME_PATTERN } from './job-spec.js';
import { StepInput } from './workflow.js';
import { nextFireAfter, utcOffsetMs } from '../cron.js';

export const SCHEDULE_NAME_PATTERN = QUEUE_NAME_PATTERN;
export const ScheduleName = Type.String({ pattern: SCHEDULE_NAME_PATTERN, description: 'Letters, digits, `_ . -`, up to 64.' });

const fields = {
  cron: Type.String({
    minLength: 1,
    maxLength: 256,
    description: '5 fields (minute hour day month weekday), 6 with seconds first, a macro such as @hourly or @midnight, or `@every 5m` (90s, 1h30m: an interval from when the schedule was created, updated or enabled).',
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
  jitterMs: Type.Integer({ minimum: 0, maximum: 3_600_000, description: 'Each fire\'s jobs start after a random delay up to this (ms); their scheduledFor stays the fire time.' }),
  startAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'No fires before this time (ISO 8601 with offset); null for none.' }),
  endAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'No fires after this time (ISO 8601 with offset); null for none.' }),
  excludeDates: Type.Array(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }), { maxItems: 1000, uniqueItems: true, description: 'Dates (YYYY-MM-DD, in the schedule\'s time zone) on which it does not fire.' }),
  calendar: Type.Union([Type.String({ pattern: QUEUE_NAME_PATTERN }), Type.Null()], { description: 'A calendar (PUT /v1/calendars/:name) whose dates it does not fire on; null for none.' }),
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
    jitterMs: Type.Optional(fields.jitterMs),
    startAt: Type.Optional(fields.startAt),
    endAt: Type.Optional(fields.endAt),
    excludeDates: Type.Optional(fields.excludeDates),
    calendar: Type.Optional(fields.calendar),
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
  /** Random delay up to this per fire (ms); absent or 0 for none. */
  jitterMs?: number;
  /** ISO times outside which it does not fire. */
  startAt?: string;
  endAt?: string;
  /** Local dates (YYYY-MM-DD) it does not fire on. */
  excludeDates?: string[];
  /** A named calendar of more such dates. */
  calendar?: string;
}

/** The optional timing fields of a definition, as given (null clears one). */
export function timingOf(input: Pick<ScheduleUpdate, 'jitterMs' | 'startAt' | 'endAt' | 'excludeDates' | 'calendar'>, current: Partial<ScheduleDef> = {}): Partial<ScheduleDef> {
  const pick = <K extends 'startAt' | 'endAt' | 'calendar'>(k: K): string | undefined => (input[k] === undefined ? current[k] : input[k] ?? undefined);
  const jitterMs = input.jitterMs ?? current.jitterMs;
  const excludeDates = input.excludeDates ?? current.excludeDates;
  const startAt = pick('startAt');
  const endAt = pick('endAt');
  const calendar = pick('calendar');
  return {
    ...(jitterMs ? { jitterMs } : {}),
    ...(startAt ? { startAt } : {}),
    ...(endAt ? { endAt } : {}),
    ...(excludeDates && excludeDates.length > 0 ? { excludeDates: [...excludeDates].sort() } : {}),
    ...(calendar ? { calendar } : {}),
  };
}

/** Whether YYYY-MM-DD names a real date (2030-02-30 and 2030-13-01 do not). */
export function isCalendarDate(d: string): boolean {
  const t = Date.parse(`${d}T00:00:00Z`);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === d;
}

/** The local date (YYYY-MM-DD) of an instant in a time zone. */
export function localDate(tz: string, at: number): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(at));
}

/** Whether an instant falls on a date the definition (or its calendar's `calendarDates`) excludes. */
export function isExcludedDate(def: Pick<ScheduleDef, 'timezone' | 'excludeDates'>, at: number, calendarDates?: ReadonlySet<string>): boolean {
  if (!def.excludeDates?.length && !calendarDates?.size) return false;
  const date = localDate(def.timezone, at);
  return (def.excludeDates ?? []).includes(date) || (calendarDates?.has(date) ?? false);
}

/** The instant the local day after the one of `at` begins (its midnight, found with the offset there). */
function startOfNextLocalDay(tz: string, at: number): number {
  const DAY = 86_400_000;
  const midnightWall = (Math.floor((at + utcOffsetMs(tz, at)) / DAY) + 1) * DAY;
  const guess = midnightWall - utcOffsetMs(tz, at);
  return midnightWall - utcOffsetMs(tz, guess);
}

/** Excluded days in a row after which a schedule counts as never firing again (each costs one step). */
const MAX_EXCLUDED_IN_A_ROW = 10_000;

/**
 * The first fire time of a definition strictly after `afterMs`, within startAt/endAt and not on an excluded date
 * (its own or `calendarDates`, the dates of its calendar), or null. `anchorMs` anchors `@every` intervals.
 */
export function nextScheduleFire(def: Pick<ScheduleDef, 'cron' | 'timezone' | 'startAt' | 'endAt' | 'excludeDates'>, afterMs: number, opts: { anchorMs?: number; calendarDates?: ReadonlySet<string> } = {}): number | null {
  const start = def.startAt ? Date.parse(def.startAt) : -Infinity;
  const end = def.endAt ? Date.parse(def.endAt) : Infinity;
  let after = afterMs;
  let anchor = opts.anchorMs ?? afterMs;
  // Nothing before startAt: an interval counts from it.
  if (start > after) {
    after = start - 1;
    anchor = start;
  }
  for (let i = 0; i < MAX_EXCLUDED_IN_A_ROW; i++) {
    const t = nextFireAfter(def.cron, def.timezone, after, anchor);
    if (t === null || t > end) return null;
    if (!isExcludedDate(def, t, opts.calendarDates)) return t;
    // The rest of an excluded day cannot fire: go on from its end (a per-second cron would otherwise step through it).
    after = Math.max(t, startOfNextLocalDay(def.timezone, t) - 1);
  }
  return null;
}

/** The next `count` fire times of a definition after `afterMs` (see nextScheduleFire). */
export function nextScheduleFires(def: Parameters<typeof nextScheduleFire>[0], afterMs: number, count: number, opts: Parameters<typeof nextScheduleFire>[2] = {}): number[] {
  const out: number[] = [];
  let t = afterMs;
  const anchorMs = opts.anchorMs ?? afterMs;
  for (let i = 0; i < count; i++) {
    const next = nextScheduleFire(def, t, { ...opts, anchorMs });
    if (next === null) break;
    out.push(next);
    t = next;
  }
  return out;
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
  lastSkippedAt: string | null;
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
    ...timingOf(input),
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
    lastSkippedAt: iso(h.lastSkippedAt),
    runningJobs: running.sort(),
  };
}
