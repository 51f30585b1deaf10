import { DroverError, publishQueued } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';
import { guards } from '../queue-scope.js';
import { ErrorResponse, JobIdParams, JobRecordSchema, errorResponses } from '../schemas.js';

const errors = errorResponses(400, 401, 403, 404, 429, 503);

/** POST /v1/jobs/:id/promote: a delayed job (a later start, or a retry's backoff) starts now. */
export function jobPromoteRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const guard = guards(ctx);
  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/promote',
    {
      config: { scope: 'submit', queues: guard.job() },
      schema: {
        operationId: 'promoteJob',
        tags: ['jobs'],
        summary: 'Start a delayed job now: it is queued and published at once (409 for a job that is not delayed)',
        params: JobIdParams,
        response: { 200: JobRecordSchema, 409: ErrorResponse, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      const outcome = await ctx.store.promote(id);
      if ('status' in outcome) {
        if (outcome.status === 'missing') throw new DroverError('NOT_FOUND', `no job ${id}`);
        throw new DroverError('CONFLICT', `job ${id} is ${outcome.status}: only a delayed job can be promoted`, { status: outcome.status });
      }
      // Queued and in the outbox already: should the publish fail, the scheduler's sweep publishes it.
      await publishQueued(ctx.transport, ctx.store, [outcome.promoted]).catch((err: unknown) =>
        ctx.log.warn({ err, jobId: id }, 'publishing a promoted job failed; the outbox sweep will publish it'),
      );
      const job = await ctx.store.get(id);
      if (!job) throw new DroverError('NOT_FOUND', `no job ${id}`);
      return job;
    },
  );
}
