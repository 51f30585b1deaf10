import {
  DEFAULT_SPEC_DEFAULTS, DroverError, FAILED_STEP_STATUSES, JOB_ID_PATTERN, WorkflowInput, checkDag, checkJobSpec, isTerminal, newJobId, planWorkflow,
  stepStatus, withDescendants, workflowStatus, type JobRecord, type Replay, type WorkflowRecord, type WorkflowRun,
} from '@drover/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { IdempotencyHeaders, claimOf, markReplayed, priorResult, replayedJobs } from '../idempotency.js';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { canSee, guards, workflowQueues } from '../queue-scope.js';
import { WorkflowViewSchema, errorResponses, pageOf } from '../schemas.js';
import { assertSubmittable, submitJobs, submitJobsOnce, throwProblems } from './jobs.js';
import { submitWarnings, withWarnings } from '../queue-consumers.js';

const errors = errorResponses(400, 401, 403, 404, 409, 429, 503);
const IdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN }) }, { additionalProperties: false });
const RestartBody = Type.Union([
  Type.Object({ mode: Type.Union([Type.Literal('whole'), Type.Literal('failed')]) }, { additionalProperties: false }),
  Type.Object({ steps: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 200, uniqueItems: true }) }, { additionalProperties: false }),
]);
export type RestartBody = { mode: 'whole' | 'failed' } | { steps: string[] };

/** Where a step's job is in the request body, for error messages. */
const stepField = (wf: WorkflowRecord, step: string | undefined): string => `steps/${wf.steps.findIndex((s) => s.name === step)}/job`;

/** A workflow as the routes answer it: each step's status, job and times, and the run's status from them. */
export async function workflowView(ctx: ApiContext, wf: WorkflowRecord) {
  const all = await ctx.store.getMany(Object.values(wf.jobs).flat());
  const byId = new Map(all.map((j) => [j.id, j]));
  const steps = wf.steps.map((s) => {
    const jobs = (wf.jobs[s.name] ?? []).map((id) => byId.get(id)).filter((j): j is JobRecord => j !== undefined);
    const first = jobs[0];
    const status = stepStatus(jobs);
    return {
      name: s.name,
      dependsOn: s.dependsOn ?? [],
      status,
      // Deprecated alias of status for one release (workflows said `state` before jobs' `status` was the one name).
      state: status,
      jobId: first?.id ?? null,
      jobIds: jobs.map((j) => j.id),
      attempts: first?.attempts ?? 0,
      startedAt: first?.startedAt ?? null,
      finishedAt: jobs.every((j) => isTerminal(j.status)) ? (first?.finishedAt ?? null) : null,
      exitCode: first?.exitCode ?? null,
      error: first?.error ?? null,
    };
  });
  const status = workflowStatus(steps.map((s) => s.status));
  return { id: wf.id, name: wf.name, status, state: status, run: wf.runs.length, concurrency: wf.concurrency ?? null, schedule: wf.schedule ?? null, createdAt: wf.createdAt, steps, runs: wf.runs };
}

/**
 * Runs a finished workflow again in its own record: `whole`, `failed` (failed and skipped steps with what follows
 * them; succeeded steps keep their jobs), or from the given steps with their descendants, whatever their status.
 * The new jobs of a step depend on its parents' jobs: the new ones of parents that run again, the existing ones
 * otherwise (a succeeded one is met at once). One batch: all or nothing. CONFLICT while it runs or when nothing failed.
 */
export async function restartWorkflow(ctx: ApiContext, wf: WorkflowRecord, body: RestartBody, request: FastifyRequest): Promise<void> {
  const current = await workflowView(ctx, wf);
  if (current.status === 'running') throw new DroverError('CONFLICT', `workflow ${wf.id} is still running; cancel it first`);
  let rerun: Set<string>;
  let mode: WorkflowRun['mode'];
  if ('steps' in body) {
    const unknown = body.steps.filter((s) => !wf.steps.some((x) => x.name === s));
    if (unknown.length > 0) throw new DroverError('VALIDATION', `steps: unknown step ${unknown.map((u) => `"${u}"`).join(', ')}`);
    rerun = withDescendants(wf.steps, body.steps);
    mode = 'steps';
  } else if (body.mode === 'whole') {
    rerun = new Set(wf.steps.map((s) => s.name));
    mode = 'whole';
  } else {
    rerun = withDescendants(wf.steps, current.steps.filter((s) => FAILED_STEP_STATUSES.includes(s.status)).map((s) => s.name));
    mode = 'failed';
    if (rerun.size === 0) throw new DroverError('CONFLICT', `workflow ${wf.id} has no failed steps`);
  }
  const now = Date.now();
  const { jobs, fresh } = planWorkflow(wf.id, wf.steps, rerun, wf.jobs, DEFAULT_SPEC_DEFAULTS, () => newJobId(now), wf.concurrency);
  for (const j of jobs) assertSubmittable(ctx, request.principal, j.spec, stepField(wf, j.spec.labels['drover.step']));
  await submitJobs(ctx, jobs, request.traceContext, request.principal);
  wf.jobs = { ...wf.jobs, ...fresh };
  wf.runs.push({ run: wf.runs.length + 1, mode, at: new Date(now).toISOString(), steps: fresh });
  await ctx.workflows.save(wf);
}

/** Keeper's workflows: a DAG of steps, each a job; restart whole, from the failed steps, or from given steps. */
export function workflowRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const guard = guards(ctx).workflow();
  const view = (wf: WorkflowRecord) => workflowView(ctx, wf);

  const mustGet = async (id: string): Promise<WorkflowRecord> => {
    const wf = await ctx.workflows.get(id);
    if (!wf) throw new DroverError('NOT_FOUND', `no workflow ${id}`);
    return wf;
  };

  /** A replayed create answers the workflow it created, as it stands now. */
  const replayStart = async (reply: FastifyReply, replay: Replay) => {
    await replayedJobs(ctx, replay, reply.request.principal);
    return markReplayed(reply).status(201).send(await view(await mustGet(replay.ref)));
  };

  app.post<{ Body: WorkflowInput }>(
    '/v1/workflows',
    {
      config: { scope: 'submit', queues: 'handler' },
      schema: {
        operationId: 'createWorkflow',
        tags: ['workflows'],
        summary: 'Run a DAG of steps: each starts when the steps it depends on succeeded',
        headers: IdempotencyHeaders,
        body: WorkflowInput,
        response: { 201: withWarnings(WorkflowViewSchema), ...errors },
      },
    },
    async (request, reply) => {
      const claim = claimOf(request, ctx);
      const prior = await priorResult(ctx, claim);
      if (prior) return replayStart(reply, prior);
      const { name, steps, concurrency } = request.body;
      const problems = checkDag(steps);
      steps.forEach((s, i) => problems.push(...checkJobSpec(s.job).map((p) => ({ field: `steps/${i}/job/${p.field}`, message: p.message }))));
      throwProblems(problems, '');
      const now = Date.now();
      const wf: WorkflowRecord = { id: newJobId(now), name, steps, ...(concurrency ? { concurrency } : {}), createdAt: new Date(now).toISOString(), jobs: {}, runs: [] };
      const { jobs, fresh } = planWorkflow(wf.id, wf.steps, new Set(steps.map((s) => s.name)), wf.jobs, DEFAULT_SPEC_DEFAULTS, () => newJobId(now), wf.concurrency);
      for (const j of jobs) assertSubmittable(ctx, request.principal, j.spec, stepField(wf, j.spec.labels['drover.step']));
      wf.jobs = fresh;
      wf.runs.push({ run: 1, mode: 'start', at: wf.createdAt, steps: fresh });
      // The record goes with its jobs in one step: a retry never finds jobs without their workflow.
      const outcome = await submitJobsOnce(ctx, jobs, { workflow: { id: wf.id, doc: ctx.workflows.docOf(wf) }, ...(claim ? { idempotency: claim } : {}) }, request.traceContext, request.principal);
      if (outcome.replayed) return replayStart(reply, outcome);
      const warnings = await submitWarnings(ctx.runners, jobs.map((j) => j.spec), ctx.log);
      const answer = await view(wf);
      return reply.status(201).send(warnings.length > 0 ? { ...answer, warnings } : answer);
    },
  );

  app.get<{ Querystring: { cursor?: string; limit?: number } }>(
    '/v1/workflows',
    {
      config: { scope: 'read', queues: 'handler' },
      schema: {
        operationId: 'listWorkflows',
        tags: ['workflows'],
        summary: 'Workflows, newest first',
        querystring: Type.Object({ cursor: Type.Optional(Type.String({ maxLength: 64 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })) }, { additionalProperties: false }),
        response: { 200: pageOf(WorkflowViewSchema), ...errors },
      },
    },
    async (request) => {
      const page = await ctx.workflows.list(request.query.cursor, request.query.limit ?? 50);
      // A workflow is visible only to a token allowed every one of its steps' queues.
      const visible = page.items.filter((wf) => canSee(request.principal, workflowQueues(wf.steps)));
      return { items: await Promise.all(visible.map(view)), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/workflows/:id',
    { config: { scope: 'read', queues: guard }, schema: { operationId: 'getWorkflow', tags: ['workflows'], summary: "Each step's status, job, times", params: IdParams, response: { 200: WorkflowViewSchema, ...errors } } },
    async (request) => view(await mustGet(request.params.id)),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/workflows/:id/cancel',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'cancelWorkflow',
        tags: ['workflows'],
        summary: 'Cancel: running steps are killed (their ids are returned), waiting ones never start',
        params: IdParams,
        response: {
          200: Type.Object({
            interrupted: Type.Array(Type.String(), { description: 'Jobs that were running and are being stopped.' }),
            cancelled: Type.Array(Type.String(), { description: 'Jobs that had not started and never will.' }),
            workflow: WorkflowViewSchema,
          }),
          ...errors,
        },
      },
    },
    async (request) => {
      const wf = await mustGet(request.params.id);
      const { flagged: interrupted, cancelled } = await ctx.store.cancelMany(Object.values(wf.jobs).flat());
      return { interrupted, cancelled, workflow: await view(wf) };
    },
  );

  app.post<{ Params: { id: string }; Body: RestartBody }>(
    '/v1/workflows/:id/restart',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'restartWorkflow',
        tags: ['workflows'],
        summary: 'Run again: mode "whole", mode "failed" (failed and skipped steps, keeping succeeded ones), or from the given steps and their descendants',
        params: IdParams,
        body: RestartBody,
        response: { 200: WorkflowViewSchema, ...errors },
      },
    },
    async (request) => {
      const wf = await mustGet(request.params.id);
      await restartWorkflow(ctx, wf, request.body, request);
      return view(wf);
    },
  );
}
