import { DroverError, JOB_ID_PATTERN, WebhookInput, WebhookUpdate, deliveryView, eventPatternsHint, unknownEventPatterns, webhookSecretProblem, type Webhook } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { guards } from '../queue-scope.js';
import type { ApiContext } from '../context.js';
import { WebhookCreatedSchema, WebhookSchema, errorResponses, listOf } from '../schemas.js';

const errors = errorResponses(400, 401, 403, 404, 429, 503);
const IdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN }) }, { additionalProperties: false });
const DeliveryQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
    before: Type.Optional(Type.Integer({ minimum: 0, description: 'Epoch ms: deliveries created before this (paging).' })),
  },
  { additionalProperties: false },
);

/** A subscription to a type no event has would never be delivered: 400 with the allowed values. */
export function assertKnownEvents(events: readonly string[] | undefined, field = 'events'): void {
  const unknown = unknownEventPatterns(events ?? []);
  if (unknown.length === 0) return;
  const message = `${unknown.map((u) => `"${u}"`).join(', ')} is no event type: each must be ${eventPatternsHint()}`;
  throw new DroverError('VALIDATION', `${field}: ${message}`, unknown.map((u) => ({ field: `${field}/${(events ?? []).indexOf(u)}`, message: `"${u}" is no event type` })));
}

const OUTCOMES = ['delivered', 'rejected', 'unreachable', 'refused_by_policy'].map((o) => Type.Literal(o));
/** What a deliveries list shows: no URL (a job's callbackUrl is never returned) and outcome classes, not network errors. */
const DeliveryPage = Type.Object({
  items: Type.Array(Type.Object({
    id: Type.String(),
    webhookId: Type.String({ description: 'The subscription, or `callback` for a job\'s own callbackUrl.' }),
    eventId: Type.String(),
    eventType: Type.String(),
    jobId: Type.Union([Type.String(), Type.Null()]),
    state: Type.Union(['pending', 'delivered', 'failed'].map((s) => Type.Literal(s)), { description: '`failed`: given up (too old, or refused by the outbound policy).' }),
    attempts: Type.Array(Type.Object({
      at: Type.String({ format: 'date-time' }),
      outcome: Type.Union(OUTCOMES, { description: '`rejected`: the receiver answered non-2xx; `unreachable`: no answer (DNS, connection, TLS, timeout alike).' }),
      statusClass: Type.Union([...['2xx', '3xx', '4xx', '5xx'].map((c) => Type.Literal(c)), Type.Null()]),
      status: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'A webhook\'s deliveries only: the receiver\'s HTTP status, when it answered.' })),
      cause: Type.Optional(Type.Union([Type.String(), Type.Null()], {
        description: 'A webhook\'s deliveries only (a job\'s callback deliveries show classes): why it did not succeed, `HTTP 503`, `ECONNREFUSED: connection refused`, `certificate has expired`, `timeout: no answer in time`, `refused by the outbound policy (...)`; never an address or URL.',
      })),
      retryAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the next attempt was planned for (the retry backoff); null: none followed.' }),
    })),
    createdAt: Type.String({ format: 'date-time' }),
    nextAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  })),
});

/**
 * A subscription as the API shows it: the secret only in the answer to its creation. Its URL is shown: only
 * admins, who set it, can read subscriptions.
 */
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
    { config: { scope: 'admin', queues: 'global' }, schema: { operationId: 'createWebhook', tags: ['webhooks'], summary: 'Subscribe a URL to events (the answer holds the signing secret, once)', body: WebhookInput, response: { 201: WebhookCreatedSchema, ...errors } } },
    async (request, reply) => {
      assertKnownEvents(request.body.events);
      const problem = request.body.secret === undefined ? null : webhookSecretProblem(request.body.secret);
      if (problem) throw new DroverError('VALIDATION', `secret: ${problem}`, [{ field: 'secret', message: problem }]);
      return reply.status(201).send(await ctx.webhooks.create(request.body));
    },
  );

  app.get('/v1/webhooks', { config: { scope: 'admin', queues: 'global' }, schema: { operationId: 'listWebhooks', tags: ['webhooks'], summary: 'Subscriptions (without secrets)', response: { 200: listOf(WebhookSchema), ...errors } } }, async () => ({
    items: (await ctx.webhooks.list()).map(shown),
  }));

  app.get<{ Params: { id: string } }>(
    '/v1/webhooks/:id',
    { config: { scope: 'admin', queues: 'global' }, schema: { operationId: 'getWebhook', tags: ['webhooks'], summary: 'One subscription', params: IdParams, response: { 200: WebhookSchema, ...errors } } },
    async (request) => shown(await mustGet(request.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: WebhookUpdate }>(
    '/v1/webhooks/:id',
    { config: { scope: 'admin', queues: 'global' }, schema: { operationId: 'updateWebhook', tags: ['webhooks'], summary: 'Change url, events, queues, enabled, description', params: IdParams, body: WebhookUpdate, response: { 200: WebhookSchema, ...errors } } },
    async (request) => {
      assertKnownEvents(request.body.events);
      const hook = await ctx.webhooks.update(request.params.id, request.body);
      if (!hook) throw new DroverError('NOT_FOUND', `no webhook ${request.params.id}`);
      return shown(hook);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/webhooks/:id',
    { config: { scope: 'admin', queues: 'global' }, schema: { operationId: 'deleteWebhook', tags: ['webhooks'], summary: 'Unsubscribe (pending deliveries are dropped)', params: IdParams, response: { 204: Type.Null({ description: 'Unsubscribed.' }), ...errors } } },
    async (request, reply) => {
      if (!(await ctx.webhooks.remove(request.params.id))) throw new DroverError('NOT_FOUND', `no webhook ${request.params.id}`);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number; before?: number } }>(
    '/v1/webhooks/:id/deliveries',
    {
      config: { scope: 'admin', queues: 'global' },
      schema: { operationId: 'listWebhookDeliveries', tags: ['webhooks'], summary: 'Deliveries, newest first, each with every attempt (time, outcome, HTTP status class)', params: IdParams, querystring: DeliveryQuery, response: { 200: DeliveryPage, ...errors } },
    },
    async (request) => {
      await mustGet(request.params.id);
      return { items: (await ctx.webhooks.deliveries({ webhookId: request.params.id }, request.query.limit ?? 50, request.query.before)).map((d) => deliveryView(d, true)) };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: number; before?: number } }>(
    '/v1/jobs/:id/deliveries',
    { config: { scope: 'read', queues: guards(ctx).job() }, schema: { operationId: 'listJobDeliveries', tags: ['jobs'], summary: "Deliveries to the job's callbackUrl (outcome classes; the URL is not shown)", params: IdParams, querystring: DeliveryQuery, response: { 200: DeliveryPage, ...errors } } },
    async (request) => {
      const job = await ctx.store.get(request.params.id);
      if (!job) throw new DroverError('NOT_FOUND', `no job ${request.params.id}`);
      return { items: (await ctx.webhooks.deliveries({ jobId: job.id }, request.query.limit ?? 50, request.query.before)).map((d) => deliveryView(d)) };
    },
  );
}
