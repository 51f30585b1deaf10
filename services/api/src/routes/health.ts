import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { namespacesOf } from '../auth.js';
import { errorResponses } from '../schemas.js';

const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  redis: Type.String({ description: '`ok`, or why Redis did not answer.' }),
  broker: Type.String({ description: '`<broker>: ok` or `<broker>: unreachable`.' }),
});

/**
 * The only unauthenticated routes: liveness (the process answers) and readiness (Redis answers). Also `/metrics`
 * for a `read` token: how Prometheus scrapes the all-in-one `drover start`, which has only this port.
 */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/healthz', {
    config: { scope: null, queues: 'none', rateLimit: false },
    schema: { operationId: 'getHealth', tags: ['health'], summary: 'Liveness', response: { 200: Type.Object({ status: Type.Literal('ok') }), ...errorResponses(400) } },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    config: { scope: null, queues: 'none', rateLimit: false },
    schema: {
      operationId: 'getReadiness',
      tags: ['health'],
      summary: 'Readiness: Redis and the broker reachable',
      response: { 200: Readiness, 503: { ...Readiness, description: 'Redis or the broker is unreachable' }, ...errorResponses(400) },
    },
  }, async (_req, reply) => {
    let redis = 'ok';
    try {
      await ctx.store.redis.ping();
    } catch (err) {
      redis = (err as Error).message;
    }
    const broker = ctx.transport.isConnected() ? 'ok' : 'unreachable';
    const ready = redis === 'ok' && broker === 'ok';
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', redis, broker: `${ctx.transport.name}: ${broker}` });
  });

  app.get('/metrics', {
    config: { scope: 'read', queues: 'global', rateLimit: false },
    schema: {
      operationId: 'getMetrics',
      tags: ['health'],
      summary: "Prometheus metrics of this process (all three services' under `drover start`), of the namespaces the token works in",
      response: {
        200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: Type.String() } } },
        ...errorResponses(401, 403),
      },
    },
  }, async (request, reply) => {
    // The process serves every namespace; a token sees the series of its own namespaces only.
    const { contentType, body } = await ctx.metrics.render(request.principal ? namespacesOf(request.principal) : []);
    return reply.type(contentType).send(body);
  });
}
