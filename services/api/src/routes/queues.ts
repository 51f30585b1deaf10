import { DroverError, QueueName, QueueSettingsInput, isTerminal, publishQueued, type JobStatus, type QueueSettingsInput as SettingsInput } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { canSee, guards } from '../queue-scope.js';
import { consumersByQueue } from '../queue-consumers.js';
import { cancelRunning, deleteFinished, retryMatching } from '../bulk-actions.js';
import { JobsAffected, MAX_AFFECTED_IDS, QueueViewSchema, affected, errorResponses, listOf } from '../schemas.js';

const errors = errorResponses(400, 401, 403, 404, 429, 503);
const NameParams = Type.Object({ name: QueueName }, { additionalProperties: false });

/** What `DELETE /v1/queues/:name/jobs?status=` may cancel: `waiting` means everything not yet started. */
const CANCELLABLE: Record<string, JobStatus[]> = { waiting: ['waiting', 'delayed', 'queued'], queued: ['queued'], delayed: ['delayed'] };
/** Finished states whose records `DELETE /v1/queues/:name/jobs?status=` deletes (with `before`). */
const DELETABLE: JobStatus[] = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'expired'];
/** What a bulk retry may run again. */
const RETRYABLE = ['failed', 'timed_out', 'lost', 'cancelled', 'expired'] as const;

const RetryBody = Type.Object(
  {
    status: Type.Union(RETRYABLE.map((s) => Type.Literal(s)), { description: 'Jobs in this state run once more.' }),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Only jobs that finished at or after this time.' })),
    cursor: Type.Optional(Type.String({ maxLength: 64, description: 'nextCursor of the previous answer: go on where it stopped.' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 1000, description: 'Most jobs this request runs again.' })),
  },
  { additionalProperties: false },
);
const BulkJobsQuery = Type.Object(
  {
    status: Type.Optional(
      Type.Union([...Object.keys(CANCELLABLE), 'running', ...DELETABLE].map((s) => Type.Literal(s)), {
        default: 'waiting',
        description: 'waiting (all not started), queued, delayed: cancelled; running: stopped (SIGTERM, then SIGKILL); a finished state: its records deleted (with before).',
      }),
    ),
    before: Type.Optional(Type.String({ format: 'date-time', description: 'With a finished state: only jobs that finished before this time (default: now).' })),
  },
  { additionalProperties: false },
);

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

  app.post<{ Params: { name: string }; Body: { status: (typeof RETRYABLE)[number]; since?: string; cursor?: string; limit?: number } }>(
    '/v1/queues/:name/retry',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'retryQueueJobs',
        tags: ['queues'],
        summary: 'Run once more every job of the queue in a finished state (since a time), as POST /v1/jobs/:id/retry does; a job already run again is not; bounded per request, nextCursor goes on',
        params: NameParams,
        body: RetryBody,
        response: { 200: Type.Intersect([JobsAffected, Type.Object({ skipped: Type.Integer({ description: 'Matching jobs the current command policy refuses (only jobs still in Redis are run again).' }), nextCursor: Type.Union([Type.String(), Type.Null()]) })]), ...errors },
      },
    },
    async (request) => {
      const { name } = request.params;
      await mustExist(name);
      const { status, since, cursor, limit = MAX_AFFECTED_IDS } = request.body;
      return retryMatching(ctx, name, { status, limit, ...(since ? { since } : {}), ...(cursor ? { cursor } : {}) }, request.principal, request.traceContext);
    },
  );

  app.delete<{ Params: { name: string }; Querystring: { status?: string; before?: string } }>(
    '/v1/queues/:name/jobs',
    {
      config: { scope: 'submit', queues: guard },
      schema: {
        operationId: 'cancelQueuedJobs',
        tags: ['queues'],
        summary: 'Cancel the jobs of a queue that have not started (status=waiting: all of them; or queued, delayed), stop its running ones (status=running), or delete its finished records (a finished status, before a time)',
        params: NameParams,
        querystring: BulkJobsQuery,
        response: {
          200: Type.Intersect([JobsAffected, Type.Object({ cancelled: Type.Optional(Type.Integer()), deleted: Type.Optional(Type.Integer()) })]),
          ...errors,
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { status = 'waiting', before } = request.query;
      if (before !== undefined && !DELETABLE.includes(status as JobStatus)) throw new DroverError('VALIDATION', `before: goes with a finished status (${DELETABLE.join(', ')}), not ${status}`, [{ field: 'before', message: 'goes with a finished status' }]);
      await mustExist(name);
      if (isTerminal(status as JobStatus)) {
        const r = await deleteFinished(ctx, name, status as JobStatus, before !== undefined ? Date.parse(before) : Date.now());
        return { deleted: r.count, count: r.count, ids: r.ids, idsTruncated: r.count > r.ids.length };
      }
      if (status === 'running') {
        const ids = await cancelRunning(ctx, name);
        return { cancelled: ids.length, ...affected(ids) };
      }
      const r = await ctx.store.cancelWaitingIds(name, CANCELLABLE[status]!, MAX_AFFECTED_IDS);
      return { cancelled: r.count, count: r.count, ids: r.ids, idsTruncated: r.count > r.ids.length };
    },
  );
}
