import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';

/**
 * The only unauthenticated routes: liveness (the process answers) and readiness (Redis answers). Also `/metrics`
 * for a `read` token: how Prometheus scrapes the all-in-one `drover start`, which has only this port.
 */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/healthz', { config: { scope: null, queues: 'none', rateLimit: false }, schema: { tags: ['health'], summary: 'Liveness' } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: { scope: null, queues: 'none', rateLimit: false }, schema: { tags: ['health'], summary: 'Readiness: Redis and the broker reachable' } }, async (_req, reply) => {
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
    schema: { tags: ['health'], summary: "Prometheus metrics of this process (all three services' under `drover start`)", produces: ['text/plain'] },
  }, async (_req, reply) => {
    const { contentType, body } = await ctx.metrics.render();
    return reply.type(contentType).send(body);
  });
}
