import {
  DEFAULT_SPEC_DEFAULTS, DroverError, ScheduleInput, ScheduleName, ScheduleUpdate, checkDag, checkJobSpec, firePayload, mergeNewestFirst, nextFireAfter, publishQueued,
  isTimeZone, nextFireTimes, normalizeJobSpec, scheduleDefaults, validateCron, type FirePayload, type IdempotencyClaim, type JobRecord, type JobSpec, type JobTemplate, type Replay, type ScheduleDef,
  type SpecProblem,
} from '@drover/core';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { IdempotencyHeaders, claimOf, markReplayed, priorResult, replayedJobs, storedNotPublished } from '../idempotency.js';
import type { Principal } from '../auth.js';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { canSee, guards, scheduleQueues } from '../queue-scope.js';
import { ErrorResponse, JobRecordSchema, ScheduleRecordSchema, errorResponses, noBodyIsEmpty } from '../schemas.js';
import { SubmittedJob, assertJobCount, assertSubmittable, throwProblems } from './jobs.js';
import { submitWarnings, withWarnings, type SubmitWarning } from '../queue-consumers.js';
import { scheduleJobs, stopJobs, stopped } from '../job-actions.js';

const NameParams = Type.Object({ name: ScheduleName }, { additionalProperties: false });
const PageQuery = Type.Object(
  { cursor: Type.Optional(Type.String({ maxLength: 128 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })) },
  { additionalProperties: false },
);
const NamesBody = Type.Object({ names: Type.Array(ScheduleName, { minItems: 1, maxItems: 1000, uniqueItems: true }) }, { additionalProperties: false });
const TriggerBody = Type.Object(
  {
    delayMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Run this many ms from now (bounded by DROVER_MAX_DELAY_MS).' })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 65536 }), { maxProperties: 256, additionalProperties: false })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 65536 }), { maxItems: 4096 })),
  },
  { additionalProperties: false },
);
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
  throwProblems(problems, 'body');
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
  await ctx.schedules.setEnabled(current.map((s) => ({ name: s!.name, enabled, nextRunAt: enabled ? nextFireAfter(s!.cron, s!.timezone, now) : null })), now);
}

export function scheduleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const guard = guards(ctx).schedule();
  const next = (def: ScheduleDef, enabled: boolean, now: number): number | null =>
    enabled ? nextFireAfter(def.cron, def.timezone, now) : null;
  const mustGet = async (name: string) => {
    const s = await ctx.schedules.get(name);
    if (!s) throw new DroverError('NOT_FOUND', `no schedule ${name}`);
    return s;
  };
  const viewOf = async (name: string) => scheduleView(await mustGet(name));
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
      for (const { spec, field } of defSpecs(def)) assertSubmittable(ctx, request.principal, spec, field);
      assertFireSize(ctx, def);
      const enabled = request.body.enabled ?? true;
      const now = Date.now();
      if (!(await ctx.schedules.put('create', request.body.name, def, enabled, next(def, enabled, now), now))) {
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
      return { items: page.items.filter((s) => canSee(request.principal, scheduleQueues(s))).map(scheduleView), nextCursor: page.nextCursor };
    },
  );

  app.get<Named>(
    '/v1/schedules/:name',
    { config: { scope: 'read', queues: guard }, schema: { operationId: 'getSchedule', tags: ['schedules'], summary: 'A schedule with its next and last run, and the next 5 fire times', params: NameParams, response: { 200: ScheduleRecordSchema, ...errors } } },
    async (request) => {
      const s = await viewOf(request.params.name);
      return { ...s, upcoming: nextFireTimes(s.cron, s.timezone, Date.now(), 5).map((t) => new Date(t).toISOString()) };
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
      };
      checkDef(def);
      for (const { spec, field } of defSpecs(def)) assertSubmittable(ctx, request.principal, spec, field);
      assertFireSize(ctx, def);
      const enabled = wantEnabled ?? current.enabled;
      const now = Date.now();
      if (!(await ctx.schedules.put('update', request.params.name, def, enabled, next(def, enabled, now), now))) {
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

  app.post<Named & { Body: { delayMs?: number; env?: Record<string, string>; args?: string[] } }>(
    '/v1/schedules/:name/trigger',
    { preValidation: noBodyIsEmpty, config: { scope: 'submit', queues: guard }, schema: { operationId: 'triggerSchedule', tags: ['schedules'], summary: 'Run the schedule\'s job now (or after delayMs), optionally with env and args overrides', params: NameParams, headers: IdempotencyHeaders, body: TriggerBody, response: { 201: SubmittedJob, 409: ErrorResponse, ...errors } } },
    async (request, reply) => {
      const claim = claimOf(request, ctx);
      const prior = await priorResult(ctx, claim);
      if (prior) return replayTrigger(reply, prior);
      const s = await mustGet(request.params.name);
      const { delayMs, env, args } = request.body ?? {};
      if (delayMs !== undefined && delayMs > ctx.maxDelayMs) throwProblems([{ field: 'delayMs', message: `is more than ${ctx.maxDelayMs} ms (DROVER_MAX_DELAY_MS)` }], 'body');
      if (s.workflow && (env || args)) throwProblems([{ field: env ? 'env' : 'args', message: 'a workflow schedule is triggered as it is (no env or args; delayMs is fine)' }], 'body');
      const override: Partial<JobTemplate> = { ...(env ? { env: { ...s.job?.env, ...env } } : {}), ...(args ? { args } : {}) };
      if (s.job) throwProblems(checkJobSpec({ ...s.job, ...override }), 'body');
      const now = Date.now();
      const payload = firePayload(s.name, s, now, override);
      if (payload.spec) assertSubmittable(ctx, request.principal, payload.spec, 'job');
      else for (const { spec, field } of defSpecs(s)) assertSubmittable(ctx, request.principal, spec, field);
      const outcome = await triggerScheduleOnce(ctx, s.name, payload, delayMs ? now + delayMs : null, now, claim);
      if (outcome === 'missing') throw new DroverError('NOT_FOUND', `no schedule ${s.name}`);
      if (outcome !== 'fired') return replayTrigger(reply, outcome);
      const warnings = await submitWarnings(ctx.runners, defSpecs(s).map(({ spec }) => spec), ctx.log);
      const job = (await ctx.store.get(payload.jobIds[0]!))!;
      return reply.status(201).send(warnings.length > 0 ? { ...job, warnings } : job);
    },
  );

  app.get<{ Querystring: { cron: string; timezone?: string; count?: number } }>(
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
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ cron: Type.String(), timezone: Type.String(), next: Type.Array(Type.String({ format: 'date-time' })) }), ...errors },
      },
    },
    async (request) => {
      const { cron, timezone = 'UTC', count = 5 } = request.query;
      if (!isTimeZone(timezone)) throwProblems([{ field: 'timezone', message: `unknown time zone "${timezone}" (use an IANA name such as Europe/Berlin)` }], 'querystring');
      try {
        validateCron(cron, timezone);
      } catch (err) {
        throwProblems([{ field: 'cron', message: (err as Error).message }], 'querystring');
      }
      return { cron, timezone, next: nextFireTimes(cron, timezone, Date.now(), count).map((t) => new Date(t).toISOString()) };
    },
  );

  app.get<Named & { Querystring: { cursor?: string; limit?: number } }>(
    '/v1/schedules/:name/runs',
    { config: { scope: 'read', queues: guard }, schema: { operationId: 'listScheduleRuns', tags: ['schedules'], summary: 'Jobs this schedule produced, newest first', params: NameParams, querystring: PageQuery, response: { 200: Type.Object({ items: Type.Array(JobRecordSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errors } } },
    async (request) => {
      await mustGet(request.params.name);
      const { cursor, limit = 50 } = request.query;
      if (cursor !== undefined && !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
      const page = await ctx.schedules.runs(request.params.name, cursor, limit);
      // A schedule moved between queues by an admin keeps its older runs: a restricted token sees its queues' only.
      const items: JobRecord[] = (await ctx.store.getMany(page.ids)).filter((j) => canSee(request.principal, [j.queue]));
      if (!ctx.archive) return { items, nextCursor: page.nextCursor };
      // Runs Redis no longer holds come from the archive; both sides take ids below the cursor, merged newest first.
      const archived = await ctx.archive.list({ schedule: request.params.name }, cursor, limit + 1);
      return mergeNewestFirst(items, page.nextCursor, archived, limit);
    },
  );
}
