import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';

/** The only unauthenticated routes: liveness (the process answers) and readiness (Redis answers). */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/healthz', { config: { scope: null, rateLimit: false }, schema: { tags: ['health'], summary: 'Liveness' } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: { scope: null, rateLimit: false }, schema: { tags: ['health'], summary: 'Readiness: Redis and the broker reachable' } }, async (_req, reply) => {
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
}
