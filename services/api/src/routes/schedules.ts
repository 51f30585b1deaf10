import {
  DEFAULT_SPEC_DEFAULTS, DroverError, ScheduleInput, ScheduleName, ScheduleUpdate, checkDag, checkJobSpec, firePayload, mergeNewestFirst, nextScheduleFire, nextScheduleFires, publishQueued,
  isCalendarDate, isTimeZone, normalizeJobSpec, scheduleDefaults, timingOf, utcOffsetMs, validateCron, type FirePayload, type IdempotencyClaim, type JobRecord, type JobSpec, type JobTemplate, type Replay, type ScheduleDef,
  type ScheduleRecord, type SpecProblem,
} from '@drover/core';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { IdempotencyHeaders, claimOf, markReplayed, priorResult, replayedJobs, storedNotPublished } from '../idempotency.js';
import type { Principal } from '../auth.js';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { canSee, guards, scheduleQueues } from '../queue-scope.js';
import { ErrorResponse, JobRecordSchema, ScheduleRecordSchema, UnfiredRunItemSchema, UnfiredRunSchema, errorResponses, noBodyIsEmpty } from '../schemas.js';
import { withUnfiredRuns } from '../schedule-runs.js';
import { SubmittedJob, assertJobCount, assertSubmittable, throwProblems } from './jobs.js';
import { submitWarnings, withWarnings, type SubmitWarning } from '../queue-consumers.js';
import { scheduleJobs, stopJobs, stopped } from '../job-actions.js';

const NameParams = Type.Object({ name: ScheduleName }, { additionalProperties: false });
const PageQuery = Type.Object(
  { cursor: Type.Optional(Type.String({ maxLength: 128 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })) },
  { additionalProperties: false },
);
const RunsQuery = Type.Object(
  {
    ...PageQuery.properties,
    kind: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('jobs')], { default: 'all', description: '`jobs`: only the jobs, without the fire times that made none (scripts written before they were runs).' })),
  },
  { additionalProperties: false },
);
const NamesBody = Type.Object({ names: Type.Array(ScheduleName, { minItems: 1, maxItems: 1000, uniqueItems: true }) }, { additionalProperties: false });
const TriggerBody = Type.Object(
  {
    delayMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Run this many ms from now (bounded by DROVER_MAX_DELAY_MS).' })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 65536 }), { maxProperties: 256, additionalProperties: false })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 65536 }), { maxItems: 4096 })),
    ignoreDependencies: Type.Optional(Type.Boolean({ description: 'Start without waiting: the job\'s dependsOn, or (workflow) every step at once.' })),
  },
  { additionalProperties: false },
);
type TriggerOptions = { delayMs?: number; env?: Record<string, string>; args?: string[]; ignoreDependencies?: boolean };
const errors = errorResponses(400, 401, 403, 404, 429, 503);

type Named = { Params: { name: string } };

/** The job specs a schedule's fires create: its job, or its workflow's steps. */
export function defSpecs(def: ScheduleDef): { spec: JobSpec; field: string }[] {
  if (def.workflow) return def.workflow.steps.map((s, i) => ({ spec: normalizeJobSpec(s.job, DEFAULT_SPEC_DEFAULTS), field: `workflow/steps/${i}/job` }));
  return def.job ? [{ spec: normalizeJobSpec(def.job, DEFAULT_SPEC_DEFAULTS), field: 'job' }] : [];
}

/** Every fire creates the schedule's jobs at once: a fire may create no more than one request may (DROVER_MAX_JOBS_PER_REQUEST). */
function assertFireSize(ctx: ApiContext, def: ScheduleDef): void {
  assertJobCount(ctx, defSpecs(def).reduce((n, { spec }) => n + (spec.replicas ?? 1), 0), def.workflow ? 'body/workflow' : 'body/job');
}

/**
 * Runs a schedule's job (or workflow) now, outside its cron times: the jobs of `payload` are created as the
 * schedule's runs, counted, and published. Returns false when the schedule does not exist.
 */
export async function triggerSchedule(ctx: ApiContext, name: string, payload: FirePayload, runAt: number | null, now: number): Promise<boolean> {
  const outcome = await triggerScheduleOnce(ctx, name, payload, runAt, now, undefined);
  return outcome === 'fired';
}

/**
 * triggerSchedule with an Idempotency-Key claim: 'fired', 'missing' (no such schedule), or the replay of the run the
 * key fired before. The run's jobs are in the outbox from the start, so a failed publish leaves them to the sweep;
 * with a key the 503 says they are stored.
 */
export async function triggerScheduleOnce(ctx: ApiContext, name: string, payload: FirePayload, runAt: number | null, now: number, claim: IdempotencyClaim | undefined): Promise<'fired' | 'missing' | Replay> {
  // Schedules are checked when defined; this covers ones defined before the limit was lowered.
  assertJobCount(ctx, payload.created.length);
  const outcome = await ctx.schedules.triggerOnce(name, payload, runAt, claim, now);
  if (outcome.replayed) return outcome;
  if (!outcome.status) return 'missing';
  for (const j of payload.created) ctx.metrics.jobsSubmitted.inc({ queue: j.queue });
  // A run for later (runAt) is published when it comes due, by the scheduler.
  if (runAt === null && (outcome.status === 'queued' || payload.bundle)) {
    try {
      await publishQueued(ctx.transport, ctx.store, payload.publish);
    } catch (err) {
      if (!claim) throw err;
      ctx.log.warn({ err, schedule: name }, 'publish failed after a keyed trigger stored its run; the outbox sweep will publish it');
      throw storedNotPublished();
    }
  }
  return 'fired';
}

/**
 * The definition a manual run fires: env merged into the job's (every step's), args replacing its (every step's),
 * and with ignoreDependencies no dependsOn (a workflow's steps all start at once).
 */
function triggeredDef(def: ScheduleDef, o: TriggerOptions): ScheduleDef {
  const apply = (t: JobTemplate): JobTemplate => {
    const out: JobTemplate = { ...t, ...(o.env ? { env: { ...t.env, ...o.env } } : {}), ...(o.args ? { args: o.args } : {}) };
    if (o.ignoreDependencies) delete out.dependsOn;
    return out;
  };
  if (def.workflow) {
    const steps = def.workflow.steps.map((st) => {
      const step = { ...st, job: apply(st.job) };
      if (o.ignoreDependencies) delete step.dependsOn;
      return step;
    });
    return { ...def, workflow: { ...def.workflow, steps } };
  }
  return def.job ? { ...def, job: apply(def.job) } : def;
}

/** Validates what JSON schema cannot: job xor workflow, the cron expression, the time zone, the templates' own rules. */
function checkDef(def: ScheduleDef): void {
  const problems: SpecProblem[] = [];
  if (!def.job === !def.workflow) problems.push({ field: def.job ? 'workflow' : 'job', message: 'give exactly one of "job" and "workflow"' });
  if (def.job) problems.push(...checkJobSpec(def.job).map((p) => ({ field: `job/${p.field}`, message: p.message })));
  if (def.workflow) {
    problems.push(...checkDag(def.workflow.steps).map((p) => ({ field: `workflow/${p.field}`, message: p.message })));
    def.workflow.steps.forEach((s, i) => problems.push(...checkJobSpec(s.job).map((p) => ({ field: `workflow/steps/${i}/job/${p.field}`, message: p.message }))));
  }
  try {
    validateCron(def.cron, def.timezone);
  } catch (err) {
    const message = (err as Error).message;
    problems.push({ field: message.startsWith('unknown time zone') ? 'timezone' : 'cron', message });
  }
  problems.push(...timingProblems(def));
  throwProblems(problems, 'body');
}

/** startAt before endAt, and excluded dates that exist. */
function timingProblems(def: ScheduleDef): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (def.startAt && def.endAt && Date.parse(def.startAt) >= Date.parse(def.endAt)) problems.push({ field: 'endAt', message: 'must be after startAt' });
  (def.excludeDates ?? []).forEach((d, i) => {
    if (!isCalendarDate(d)) problems.push({ field: `excludeDates/${i}`, message: `${d} is not a date` });
  });
  return problems;
}

/** A template as answers show it: env names, never values (as job records show envKeys); never its callbackUrl. */
function templateView({ env, callbackUrl: _callbackUrl, ...rest }: JobTemplate): Omit<JobTemplate, 'env' | 'callbackUrl'> & { envKeys?: string[] } {
  return env ? { ...rest, envKeys: Object.keys(env).sort() } : rest;
}

/** A schedule as every route answers it: env values of its job or steps replaced by their names. */
export function scheduleView<T extends ScheduleDef>(s: T): T {
  const out = { ...s };
  if (s.job) out.job = templateView(s.job);
  if (s.workflow) out.workflow = { ...s.workflow, steps: s.workflow.steps.map((st) => ({ ...st, job: templateView(st.job) })) };
  return out;
}

const WarnedSchedule = withWarnings(ScheduleRecordSchema);

/**
 * Enables or disables schedules in one step, all or none (adapters use it too). Another queue's schedule counts as
 * missing for a restricted token: the same NOT_FOUND (details.missing), and nothing changed.
 */
export async function setSchedulesEnabled(ctx: ApiContext, names: string[], enabled: boolean, principal: Principal | undefined): Promise<void> {
  const now = Date.now();
  const current = await Promise.all(names.map((n) => ctx.schedules.get(n)));
  const missing = names.filter((_, i) => !current[i] || !canSee(principal, scheduleQueues(current[i])));
  if (missing.length > 0) throw new DroverError('NOT_FOUND', `no schedule ${missing.join(', ')}`, { missing });
  const next = await Promise.all(current.map((s) => (enabled ? firstFire(ctx, s!, now) : Promise.resolve(null))));
  await ctx.schedules.setEnabled(current.map((s, i) => ({ name: s!.name, enabled, nextRunAt: next[i] ?? null })), now);
}

/** An offset in ms as ISO 8601 writes it: +02:00, -04:00, +05:45. */
function offsetLabel(ms: number): string {
  const m = Math.round(Math.abs(ms) / 60_000);
  return `${ms < 0 ? '-' : '+'}${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/** A definition's first fire time after `now` (an `@every` interval counts from now), with its calendar's dates. */
export async function firstFire(ctx: ApiContext, def: ScheduleDef, now: number): Promise<number | null> {
  return nextScheduleFire(def, now, { calendarDates: await ctx.schedules.calendarDates(def.calendar) });
}

/** The next `count` fire times of an enabled schedule, from its nextRunAt on; none for a disabled one. */
async function upcomingOf(ctx: ApiContext, s: ScheduleRecord, count: number): Promise<string[]> {
  if (!s.enabled || !s.nextRunAt) return [];
  const first = Date.parse(s.nextRunAt);
  const rest = nextScheduleFires(s, first, count - 1, { anchorMs: first, calendarDates: await ctx.schedules.calendarDates(s.calendar) });
  return [first, ...rest].map((t) => new Date(t).toISOString());
}

/** Schedules with the runner (id and host) of their last run's job, once it was claimed. */
async function withLastRunner<T extends ScheduleRecord>(ctx: ApiContext, list: T[]): Promise<(T & { lastRunner: string | null; lastRunnerHost: string | null })[]> {
  const jobs = new Map((await ctx.store.getMany(list.flatMap((s) => (s.lastJobId ? [s.lastJobId] : [])))).map((j) => [j.id, j] as const));
  const runnerIds = new Set([...jobs.values()].flatMap((j) => (j.runnerId ? [j.runnerId] : [])));
  const hosts = new Map(runnerIds.size > 0 ? (await ctx.runners.list()).map((r) => [r.id, r.host ?? null] as const) : []);
  return list.map((s) => {
    const runner = (s.lastJobId ? jobs.get(s.lastJobId)?.runnerId : undefined) || null;
    return { ...s, lastRunner: runner, lastRunnerHost: runner ? (hosts.get(runner) ?? null) : null };
  });
}

/** A schedule's calendar must exist when it is named. */
async function assertCalendar(ctx: ApiContext, def: ScheduleDef): Promise<void> {
  if (def.calendar && !(await ctx.schedules.calendars()).has(def.calendar)) {
    throwProblems([{ field: 'calendar', message: `no calendar ${def.calendar} (create it with PUT /v1/calendars/${def.calendar})` }], 'body');
  }
}

export function scheduleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const guard = guards(ctx).schedule();
  const next = async (def: ScheduleDef, enabled: boolean, now: number): Promise<number | null> => (enabled ? firstFire(ctx, def, now) : null);
  const mustGet = async (name: string) => {
    const s = await ctx.schedules.get(name);
    if (!s) throw new DroverError('NOT_FOUND', `no schedule ${name}`);
    return s;
  };
  const viewOf = async (name: string) => scheduleView((await withLastRunner(ctx, [await mustGet(name)]))[0]!);
  // A schedule whose jobs no runner would take is accepted, and said so (as job submissions are).
  const warned = async <T extends object>(view: T, def: ScheduleDef): Promise<T & { warnings?: SubmitWarning[] }> => {
    const warnings = await submitWarnings(ctx.runners, defSpecs(def).map(({ spec }) => spec), ctx.log);
    return warnings.length > 0 ? { ...view, warnings } : view;
  };

  app.post<{ Body: ScheduleInput }>(
    '/v1/schedules',
    { config: { scope: 'submit', queues: 'handler' }, schema: { operationId: 'createSchedule', tags: ['schedules'], summary: 'Create a cron schedule', body: ScheduleInput, response: { 201: WarnedSchedule, 409: ErrorResponse, ...errors } } },
    async (request, reply) => {
      const def = scheduleDefaults(request.body);
      checkDef(def);
      await assertCalendar(ctx, def);
      for (const { spec, field } of defSpecs(def)) assertSubmittable(ctx, request.principal, spec, field);
      assertFireSize(ctx, def);
      const enabled = request.body.enabled ?? true;
      const now = Date.now();
      if (!(await ctx.schedules.put('create', request.body.name, def, enabled, await next(def, enabled, now), now))) {
        throw new DroverError('CONFLICT', `a schedule named ${request.body.name} exists already`, { field: 'name' });
      }
      return reply.status(201).send(await warned(await viewOf(request.body.name), def));
    },
  );

  app.get<{ Querystring: { cursor?: string; limit?: number } }>(
    '/v1/schedules',
    { config: { scope: 'read', queues: 'handler' }, schema: { operationId: 'listSchedules', tags: ['schedules'], summary: 'List schedules by name', querystring: PageQuery, response: { 200: Type.Object({ items: Type.Array(ScheduleRecordSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors } } },
    async (request) => {
      const page = await ctx.schedules.list(request.query.cursor, request.query.limit ?? 50);
      // A restricted token sees the schedules whose every job runs in its queues; the cursor pages on regardless.
      const visible = page.items.filter((s) => canSee(request.principal, scheduleQueues(s)));
      return { items: (await withLastRunner(ctx, visible)).map(scheduleView), nextCursor: page.nextCursor };
    },
  );

  app.get<Named>(
    '/v1/schedules/:name',
    { config: { scope: 'read', queues: guard }, schema: { operationId: 'getSchedule', tags: ['schedules'], summary: 'A schedule with its next and last run, and the next 5 fire times (none while disabled)', params: NameParams, response: { 200: ScheduleRecordSchema, ...errors } } },
    async (request) => {
      const s = await viewOf(request.params.name);
      return { ...s, upcoming: await upcomingOf(ctx, s, 5) };
    },
  );

  app.put<Named & { Body: ScheduleUpdate }>(
    '/v1/schedules/:name',
    { config: { scope: 'submit', queues: guard }, schema: { operationId: 'updateSchedule', tags: ['schedules'], summary: 'Update: given fields replace the schedule\'s; the next fire time is recomputed', params: NameParams, body: ScheduleUpdate, response: { 200: WarnedSchedule, ...errors } } },
    async (request) => {
      const current = await mustGet(request.params.name);
      const { enabled: wantEnabled, ...changes } = request.body;
      const def: ScheduleDef = {
        cron: changes.cron ?? current.cron,
        timezone: changes.timezone ?? current.timezone,
        // A new job replaces a workflow and the other way round.
        ...(changes.job ? { job: changes.job } : changes.workflow ? {} : current.job ? { job: current.job } : {}),
        ...(changes.workflow ? { workflow: changes.workflow } : changes.job ? {} : current.workflow ? { workflow: current.workflow } : {}),
        overlap: changes.overlap ?? current.overlap,
        misfire: changes.misfire ?? current.misfire,
        description: changes.description ?? current.description,
        alertAfterFailures: changes.alertAfterFailures !== undefined ? changes.alertAfterFailures : current.alertAfterFailures,
        ...timingOf(changes, current),
      };
      checkDef(def);
      await assertCalendar(ctx, def);
      for (const { spec, field } of defSpecs(def)) assertSubmittable(ctx, request.principal, spec, field);
      assertFireSize(ctx, def);
      const enabled = wantEnabled ?? current.enabled;
      const now = Date.now();
      if (!(await ctx.schedules.put('update', request.params.name, def, enabled, await next(def, enabled, now), now))) {
        throw new DroverError('NOT_FOUND', `no schedule ${request.params.name}`);
      }
      return warned(await viewOf(request.params.name), def);
    },
  );

  app.delete<Named & { Querystring: { kill?: string } }>(
    '/v1/schedules/:name',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'deleteSchedule',
        tags: ['schedules'],
        summary: 'Delete: stops firing; with ?kill=1 also cancels its unfinished jobs and answers with their ids',
        params: NameParams,
        querystring: Type.Object({ kill: Type.Optional(Type.Union(['1', '0', 'true', 'false'].map((v) => Type.Literal(v)))) }, { additionalProperties: false }),
        response: { 200: Type.Object({ deleted: Type.String(), interrupted: Type.Array(Type.String()) }), ...errors },
      },
    },
    async (request) => {
      const kill = request.query.kill === '1' || request.query.kill === 'true';
      const r = await ctx.schedules.delete(request.params.name, kill);
      if (!r) throw new DroverError('NOT_FOUND', `no schedule ${request.params.name}`);
      await ctx.store.signalCancel(r.flagged);
      return { deleted: request.params.name, interrupted: [...r.cancelled, ...r.flagged].sort() };
    },
  );

  app.post<Named>(
    '/v1/schedules/:name/kill',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'killScheduleJobs',
        tags: ['schedules'],
        summary: 'Stop the schedule\'s unfinished jobs (waiting ones never start, running ones get SIGTERM, then SIGKILL); the schedule stays and fires on',
        params: NameParams,
        response: { 200: Type.Object({ schedule: Type.String(), interrupted: Type.Array(Type.String()) }), ...errors },
      },
    },
    async (request) => {
      const s = await ctx.schedules.get(request.params.name);
      if (!s) throw new DroverError('NOT_FOUND', `no schedule ${request.params.name}`);
      return { schedule: s.name, interrupted: stopped(await stopJobs(ctx, await scheduleJobs(ctx, s))) };
    },
  );

  const setEnabled = async (names: string[], enabled: boolean, principal: Principal | undefined) => {
    await setSchedulesEnabled(ctx, names, enabled, principal);
    return Promise.all(names.map(viewOf));
  };
  for (const action of ['enable', 'disable'] as const) {
    app.post<Named>(
      `/v1/schedules/:name/${action}`,
      { config: { scope: 'submit', queues: guard }, schema: { operationId: `${action}Schedule`, tags: ['schedules'], summary: `${action === 'enable' ? 'Enable' : 'Disable'} a schedule`, params: NameParams, response: { 200: ScheduleRecordSchema, ...errors } } },
      async (request) => (await setEnabled([request.params.name], action === 'enable', request.principal))[0],
    );
    app.post<{ Body: { names: string[] } }>(
      `/v1/schedules/${action}`,
      { config: { scope: 'submit', queues: 'handler' }, schema: { operationId: `${action}Schedules`, tags: ['schedules'], summary: `${action === 'enable' ? 'Enable' : 'Disable'} several schedules: all or none`, body: NamesBody, response: { 200: Type.Object({ items: Type.Array(ScheduleRecordSchema) }), ...errors } } },
      async (request) => ({ items: await setEnabled(request.body.names, action === 'enable', request.principal) }),
    );
  }

  /** A replayed trigger answers the first job of the run it fired, as the first answer did. */
  const replayTrigger = async (reply: FastifyReply, replay: Replay) => {
    const byId = await replayedJobs(ctx, replay, reply.request.principal);
    return markReplayed(reply).status(201).send(byId.get(replay.results[0]!.id)!);
  };

  app.post<Named & { Body: TriggerOptions }>(
    '/v1/schedules/:name/trigger',
    { preValidation: noBodyIsEmpty, config: { scope: 'submit', queues: guard }, schema: { operationId: 'triggerSchedule', tags: ['schedules'], summary: 'Run the schedule\'s job (or workflow) now or after delayMs, optionally with env and args overrides (every step\'s, for a workflow) and without its dependencies', params: NameParams, headers: IdempotencyHeaders, body: TriggerBody, response: { 201: SubmittedJob, 409: ErrorResponse, ...errors } } },
    async (request, reply) => {
      const claim = claimOf(request, ctx);
      const prior = await priorResult(ctx, claim);
      if (prior) return replayTrigger(reply, prior);
      const current = await mustGet(request.params.name);
      const { delayMs } = request.body ?? {};
      if (delayMs !== undefined && delayMs > ctx.maxDelayMs) throwProblems([{ field: 'delayMs', message: `is more than ${ctx.maxDelayMs} ms (DROVER_MAX_DELAY_MS)` }], 'body');
      const s = triggeredDef(current, request.body ?? {});
      checkDef(s);
      const now = Date.now();
      const payload = firePayload(current.name, ctx.schedules.seal(s), now);
      for (const { spec, field } of defSpecs(s)) assertSubmittable(ctx, request.principal, spec, field);
      const outcome = await triggerScheduleOnce(ctx, current.name, payload, delayMs ? now + delayMs : null, now, claim);
      if (outcome === 'missing') throw new DroverError('NOT_FOUND', `no schedule ${current.name}`);
      if (outcome !== 'fired') return replayTrigger(reply, outcome);
      const warnings = await submitWarnings(ctx.runners, defSpecs(s).map(({ spec }) => spec), ctx.log);
      const job = (await ctx.store.get(payload.jobIds[0]!))!;
      // As POST /v1/jobs does: a schedule with replicas answers every copy's id.
      const replicas = payload.spec && payload.jobIds.length > 1 ? { replicaJobs: payload.jobIds } : {};
      return reply.status(201).send({ ...job, ...replicas, ...(warnings.length > 0 ? { warnings } : {}) });
    },
  );

  app.get<{ Querystring: { cron: string; timezone?: string; count?: number; from?: string } }>(
    '/v1/cron/preview',
    {
      config: { scope: 'read', queues: 'none' },
      schema: {
        operationId: 'previewCron',
        tags: ['schedules'],
        summary: 'The next fire times of a cron expression (what a schedule with it would do), or why it is invalid',
        querystring: Type.Object({
          cron: Type.String({ minLength: 1, maxLength: 256 }),
          timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          count: Type.Optional(Type.Integer({ minimum: 1, maximum: 50 })),
          from: Type.Optional(Type.String({ format: 'date-time', description: 'Fire times after this (ISO 8601 with offset); default now. An @every interval counts from it.' })),
        }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            cron: Type.String(),
            timezone: Type.String(),
            from: Type.String({ format: 'date-time' }),
            next: Type.Array(Type.String({ format: 'date-time' })),
            offsets: Type.Array(Type.String({ description: 'The time zone\'s UTC offset at each fire time, e.g. +02:00.' })),
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const { cron, timezone = 'UTC', count = 5 } = request.query;
      const from = request.query.from === undefined ? Date.now() : Date.parse(request.query.from);
      if (!isTimeZone(timezone)) throwProblems([{ field: 'timezone', message: `unknown time zone "${timezone}" (use an IANA name such as Europe/Berlin)` }], 'querystring');
      try {
        validateCron(cron, timezone);
      } catch (err) {
        throwProblems([{ field: 'cron', message: (err as Error).message }], 'querystring');
      }
      const next = nextScheduleFires({ cron, timezone }, from, count);
      return { cron, timezone, from: new Date(from).toISOString(), next: next.map((t) => new Date(t).toISOString()), offsets: next.map((t) => offsetLabel(utcOffsetMs(timezone, t))) };
    },
  );

  app.get<Named & { Querystring: { cursor?: string; limit?: number; kind?: 'all' | 'jobs' } }>(
    '/v1/schedules/:name/runs',
    { config: { scope: 'read', queues: guard }, schema: { operationId: 'listScheduleRuns', tags: ['schedules'], summary: "The schedule's runs, newest first: its jobs, and the fire times that made none (kind unfired, status skipped or misfired) where they fell; `limit` counts jobs", params: NameParams, querystring: RunsQuery, response: { 200: Type.Object({ items: Type.Array(Type.Union([JobRecordSchema, UnfiredRunItemSchema])), nextCursor: Type.Union([Type.String(), Type.Null()]), unfired: Type.Optional(Type.Array(UnfiredRunSchema, { description: 'First page only: the newest unfired fire times again, as a list of their own (kept for clients written before they were runs).' })) }), ...errors } } },
    async (request) => {
      const s = await mustGet(request.params.name);
      const { cursor, limit = 50, kind = 'all' } = request.query;
      if (cursor !== undefined && !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
      const page = await ctx.schedules.runs(request.params.name, cursor, limit);
      // Fire times that made no job are runs too, placed among the jobs by fire time (the newest UNFIRED_MAX kept).
      const unfired = canSee(request.principal, scheduleQueues(s)) ? await ctx.schedules.unfired(s.name) : [];
      const firstPage = cursor === undefined ? { unfired } : {};
      // A schedule moved between queues by an admin keeps its older runs: a restricted token sees its queues' only.
      const items: JobRecord[] = (await ctx.store.getMany(page.ids)).filter((j) => canSee(request.principal, [j.queue]));
      // Runs Redis no longer holds come from the archive; both sides take ids below the cursor, merged newest first.
      const jobs = ctx.archive
        ? mergeNewestFirst(items, page.nextCursor, await ctx.archive.list({ schedule: request.params.name }, cursor, limit + 1), limit)
        : { items, nextCursor: page.nextCursor };
      return { ...(kind === 'jobs' ? jobs : withUnfiredRuns(jobs, cursor, unfired)), ...firstPage };
    },
  );
}
