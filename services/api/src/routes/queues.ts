import { DroverError, QueueName, QueueSettingsInput, publishQueued, type JobStatus, type QueueSettingsInput as SettingsInput } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { canSee, guards } from '../queue-scope.js';
import { consumersByQueue } from '../queue-consumers.js';
import { QueueViewSchema, errorResponses, listOf } from '../schemas.js';

const errors = errorResponses(400, 401, 403, 404, 429, 503);
const NameParams = Type.Object({ name: QueueName }, { additionalProperties: false });

/** What `DELETE /v1/queues/:name/jobs?status=` may cancel: `waiting` means everything not yet started. */
const CANCELLABLE: Record<string, JobStatus[]> = { waiting: ['waiting', 'delayed', 'queued'], queued: ['queued'], delayed: ['delayed'] };

/** Queues (Coyotes' channels): settings that hold across all runners, live counts, pause/resume, bulk cancel. */
export function queueRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const guard = guards(ctx).queue();
  const mustExist = async (name: string): Promise<void> => {
    if (!(await ctx.queues.exists(name))) throw new DroverError('NOT_FOUND', `no queue ${name}`);
  };

  /** After a change that may open room (resume, higher limits), let parked jobs go now. */
  const releaseParked = async (name: string): Promise<void> => {
    const released = await ctx.store.releaseParked(name);
    try {
      await publishQueued(ctx.transport, ctx.store, released);
    } catch (err) {
      // They are in the outbox: the scheduler republishes them.
      ctx.log.warn({ err, queue: name, count: released.length }, 'publishing released jobs failed; the scheduler will retry');
    }
  };

  /** A queue's view with its consumers: the live runners that serve it (none: its jobs wait). */
  const withConsumers = async (names: string[]) => {
    const [views, consumers] = await Promise.all([Promise.all(names.map((n) => ctx.queues.view(n))), consumersByQueue(ctx.runners, names)]);
    return views.map((v) => ({ ...v, consumers: consumers.get(v.name) ?? [] }));
  };
  const one = async (name: string) => (await withConsumers([name]))[0]!;

  app.get('/v1/queues', { config: { scope: 'read', queues: 'handler' }, schema: { operationId: 'listQueues', tags: ['queues'], summary: 'All queues with settings, live counts and the runners that serve them', response: { 200: listOf(QueueViewSchema), ...errors } } }, async (request) => {
    const names = (await ctx.queues.names()).filter((n) => canSee(request.principal, [n]));
    return { items: await withConsumers(names) };
  });

  app.get<{ Params: { name: string } }>(
    '/v1/queues/:name',
    { config: { scope: 'read', queues: guard }, schema: { operationId: 'getQueue', tags: ['queues'], summary: 'A queue: settings, counts by state, running jobs, the runners that serve it', params: NameParams, response: { 200: QueueViewSchema, ...errors } } },
    async (request) => {
      const { name } = request.params;
      await mustExist(name);
      return one(name);
    },
  );

  app.put<{ Params: { name: string }; Body: SettingsInput }>(
    '/v1/queues/:name',
    {
      config: { scope: 'admin', queues: guard },
      schema: { operationId: 'putQueue', tags: ['queues'], summary: 'Create a queue or change its settings (given fields only; null clears)', params: NameParams, body: QueueSettingsInput, response: { 200: QueueViewSchema, ...errors } },
    },
    async (request) => {
      const { name } = request.params;
      await ctx.queues.update(name, request.body);
      await releaseParked(name);
      return one(name);
    },
  );

  for (const action of ['pause', 'resume'] as const) {
    app.post<{ Params: { name: string } }>(
      `/v1/queues/:name/${action}`,
      {
        config: { scope: 'admin', queues: guard },
        schema: {
          operationId: action === 'pause' ? 'pauseQueue' : 'resumeQueue',
          tags: ['queues'],
          summary: action === 'pause' ? 'Stop starting jobs of this queue (a queue not used yet is created paused); running ones finish' : 'Start jobs of this queue again',
          params: NameParams,
          response: { 200: QueueViewSchema, ...errors },
        },
      },
      async (request) => {
        const { name } = request.params;
        // Pausing a queue before its first job is a plan, not a typo: it creates the queue's settings.
        if (action === 'resume') await mustExist(name);
        await ctx.queues.update(name, { paused: action === 'pause' });
        if (action === 'resume') await releaseParked(name);
        return one(name);
      },
    );
  }

  app.delete<{ Params: { name: string }; Querystring: { status?: string } }>(
    '/v1/queues/:name/jobs',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'cancelQueuedJobs',
        tags: ['queues'],
        summary: 'Cancel the jobs of a queue that have not started (status=waiting: all of them; or queued, delayed)',
        params: NameParams,
        querystring: Type.Object(
          { status: Type.Optional(Type.Union(Object.keys(CANCELLABLE).map((s) => Type.Literal(s)), { default: 'waiting' })) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ cancelled: Type.Integer() }), ...errors },
      },
    },
    async (request) => {
      const { name } = request.params;
      await mustExist(name);
      return { cancelled: await ctx.store.cancelWaiting(name, CANCELLABLE[request.query.status ?? 'waiting']!) };
    },
  );
}
