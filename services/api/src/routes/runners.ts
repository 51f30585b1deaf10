import { DroverError, QUEUE_NAME_PATTERN, parseQueueSelection, selectionServes, type RunnerView } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import { canSee, guards } from '../queue-scope.js';
import { JobRecordSchema, RunnerViewSchema, errorResponses, listOf } from '../schemas.js';

const errors = errorResponses(400, 401, 403, 404, 409, 429, 503);
const IdParams = Type.Object({ id: Type.String({ pattern: QUEUE_NAME_PATTERN.replace('{0,63}', '{0,127}') }) }, { additionalProperties: false });

/**
 * Queues that would have no runner taking jobs if `target` stopped taking them: of the queues the store knows and
 * those `target` names, the ones it serves (RUNNER_QUEUES may hold patterns such as `*`) and no other running one does.
 */
function orphanedQueues(runners: RunnerView[], target: RunnerView, known: string[]): string[] {
  const selection = parseQueueSelection(target.queues);
  if (Array.isArray(selection)) return [];
  const others = runners.filter((r) => r.id !== target.id && r.state === 'running');
  const candidates = [...new Set([...selection.names, ...known])].filter((q) => selection.serves(q));
  return candidates.filter((q) => !others.some((r) => selectionServes(r.queues, q))).sort();
}

/** Runners (qschedule's workers): who is up, what runs where, drain and resume one. */
export function runnerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const find = async (id: string): Promise<RunnerView> => {
    const runner = await ctx.runners.get(id);
    if (!runner) throw new DroverError('NOT_FOUND', `no runner ${id}`);
    return runner;
  };
  const { jobQueue } = guards(ctx);
  /** Runners are shared; a restricted token sees of each only the running jobs of its own queues. */
  const scoped = async (runners: RunnerView[], principal: Principal | undefined): Promise<RunnerView[]> => {
    if (!principal?.queues) return runners;
    return Promise.all(runners.map(async (r) => {
      const queues = await Promise.all(r.running.map(jobQueue));
      return { ...r, running: r.running.filter((_, i) => queues[i] !== null && canSee(principal, [queues[i]!])) };
    }));
  };

  app.get('/v1/runners', { config: { scope: 'read', queues: 'handler' }, schema: { operationId: 'listRunners', tags: ['runners'], summary: 'Runners seen in the last hour, with state and running jobs', response: { 200: listOf(RunnerViewSchema), ...errors } } }, async (request) => ({
    items: await scoped(await ctx.runners.list(), request.principal),
  }));

  app.get<{ Params: { id: string } }>(
    '/v1/runners/:id',
    { config: { scope: 'read', queues: 'handler' }, schema: { operationId: 'getRunner', tags: ['runners'], summary: 'One runner', params: IdParams, response: { 200: RunnerViewSchema, ...errors } } },
    async (request) => (await scoped([await find(request.params.id)], request.principal))[0],
  );

  app.get<{ Params: { id: string } }>(
    '/v1/runners/:id/jobs',
    { config: { scope: 'read', queues: 'handler' }, schema: { operationId: 'listRunnerJobs', tags: ['runners'], summary: 'The jobs running on this runner now', params: IdParams, response: { 200: listOf(JobRecordSchema), ...errors } } },
    async (request) => {
      const runner = await find(request.params.id);
      return { items: (await ctx.store.runningOn(runner.id)).filter((j) => canSee(request.principal, [j.queue])) };
    },
  );

  app.post<{ Params: { id: string }; Querystring: { force?: string } }>(
    '/v1/runners/:id/drain',
    {
      config: { scope: 'admin', queues: 'global' },
      schema: {
        operationId: 'drainRunner',
        tags: ['runners'],
        summary: 'Take a runner offline: it finishes its running jobs and takes no more (force=1 to drain the last runner of a queue)',
        params: IdParams,
        querystring: Type.Object({ force: Type.Optional(Type.Union(['1', '0', 'true', 'false'].map((v) => Type.Literal(v)))) }, { additionalProperties: false }),
        response: { 200: RunnerViewSchema, ...errors },
      },
    },
    async (request) => {
      const runners = await ctx.runners.list();
      const runner = runners.find((r) => r.id === request.params.id);
      if (!runner) throw new DroverError('NOT_FOUND', `no runner ${request.params.id}`);
      if (runner.state === 'offline') throw new DroverError('CONFLICT', `runner ${runner.id} is offline`);
      const orphaned = orphanedQueues(runners, runner, await ctx.queues.names());
      const force = request.query.force === '1' || request.query.force === 'true';
      if (orphaned.length > 0 && !force) {
        throw new DroverError('CONFLICT', `runner ${runner.id} is the last one taking jobs from ${orphaned.join(', ')}; pass force=1 to drain it anyway`, {
          queues: orphaned,
        });
      }
      await signal(ctx, runner.id, 'drain');
      return waitForState(ctx, runner.id, 'draining');
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/runners/:id/resume',
    { config: { scope: 'admin', queues: 'global' }, schema: { operationId: 'resumeRunner', tags: ['runners'], summary: 'Let a drained runner take jobs again', params: IdParams, response: { 200: RunnerViewSchema, ...errors } } },
    async (request) => {
      const runner = await find(request.params.id);
      if (runner.state === 'offline') throw new DroverError('CONFLICT', `runner ${runner.id} is offline`);
      await signal(ctx, runner.id, 'resume');
      return waitForState(ctx, runner.id, 'running');
    },
  );
}

/** Records the wish (read by the runner's heartbeat) and tells the runner at once over the control channel. */
async function signal(ctx: ApiContext, id: string, type: 'drain' | 'resume'): Promise<void> {
  await ctx.runners.setDrain(id, type === 'drain');
  await ctx.control.publish(ctx.store.keys.control, JSON.stringify({ type, runnerId: id }));
}

/** Answers with the runner as it reports itself once it acted (or as it stands after a short wait). */
async function waitForState(ctx: ApiContext, id: string, state: RunnerView['state']): Promise<RunnerView | undefined> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const runner = await ctx.runners.get(id);
    if (!runner || runner.state === state || Date.now() > deadline) return runner;
    await new Promise((r) => setTimeout(r, 25));
  }
}
