import { DroverError, JOB_ID_PATTERN, WebhookInput, WebhookUpdate, type Webhook } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { guards } from '../queue-scope.js';
import type { ApiContext } from '../context.js';
import { ErrorResponse } from '../schemas.js';

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 503: ErrorResponse };
const IdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN }) }, { additionalProperties: false });
const DeliveryQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
    before: Type.Optional(Type.Integer({ minimum: 0, description: 'Epoch ms: deliveries created before this (paging).' })),
  },
  { additionalProperties: false },
);

/** A subscription as the API shows it: the secret only in the answer to its creation. */
const shown = ({ secret: _secret, ...rest }: Webhook): Omit<Webhook, 'secret'> => rest;

/**
 * Global webhook subscriptions (`/v1/webhooks`, admin) and their deliveries, plus a job's own callback deliveries.
 * Deliveries are made by the scheduler; see services/scheduler/src/webhooks.ts for signing and retries.
 */
export function webhookRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const mustGet = async (id: string): Promise<Webhook> => {
    const hook = await ctx.webhooks.get(id);
    if (!hook) throw new DroverError('NOT_FOUND', `no webhook ${id}`);
    return hook;
  };

  app.post<{ Body: WebhookInput }>(
    '/v1/webhooks',
    { config: { scope: 'admin', queues: 'global' }, schema: { tags: ['webhooks'], summary: 'Subscribe a URL to events (the answer holds the signing secret, once)', body: WebhookInput, response: errors } },
    async (request, reply) => reply.status(201).send(await ctx.webhooks.create(request.body)),
  );

  app.get('/v1/webhooks', { config: { scope: 'admin', queues: 'global' }, schema: { tags: ['webhooks'], summary: 'Subscriptions (without secrets)' } }, async () => ({
    items: (await ctx.webhooks.list()).map(shown),
  }));

  app.get<{ Params: { id: string } }>(
    '/v1/webhooks/:id',
    { config: { scope: 'admin', queues: 'global' }, schema: { tags: ['webhooks'], summary: 'One subscription', params: IdParams, response: errors } },
    async (request) => shown(await mustGet(request.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: WebhookUpdate }>(
    '/v1/webhooks/:id',
    { config: { scope: 'admin', queues: 'global' }, schema: { tags: ['webhooks'], summary: 'Change url, events, queues, enabled, description', params: IdParams, body: WebhookUpdate, response: errors } },
    async (request) => {
      const hook = await ctx.webhooks.update(request.params.id, request.body);
      if (!hook) throw new DroverError('NOT_FOUND', `no webhook ${request.params.id}`);
      return shown(hook);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/webhooks/:id',
    { config: { scope: 'admin', queues: 'global' }, schema: { tags: ['webhooks'], summary: 'Unsubscribe (pending deliveries are dropped)', params: IdParams, response: errors } },
    async (request, reply) => {
      if (!(await ctx.webhooks.remove(request.params.id))) throw new DroverError('NOT_FOUND', `no webhook ${request.params.id}`);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number; before?: number } }>(
    '/v1/webhooks/:id/deliveries',
    {
      config: { scope: 'admin', queues: 'global' },
      schema: { tags: ['webhooks'], summary: 'Deliveries, newest first, each with every attempt (status, error, duration)', params: IdParams, querystring: DeliveryQuery, response: errors },
    },
    async (request) => {
      await mustGet(request.params.id);
      return { items: await ctx.webhooks.deliveries({ webhookId: request.params.id }, request.query.limit ?? 50, request.query.before) };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number; before?: number } }>(
    '/v1/jobs/:id/deliveries',
    { config: { scope: 'read', queues: guards(ctx).job() }, schema: { tags: ['jobs'], summary: "Deliveries to the job's callbackUrl", params: IdParams, querystring: DeliveryQuery, response: errors } },
    async (request) => {
      const job = await ctx.store.get(request.params.id);
      if (!job) throw new DroverError('NOT_FOUND', `no job ${request.params.id}`);
      return { items: await ctx.webhooks.deliveries({ jobId: job.id }, request.query.limit ?? 50, request.query.before) };
    },
  );
}
