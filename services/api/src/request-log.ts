import type { FastifyInstance } from 'fastify';

/**
 * One line per request at debug (Fastify's own two lines per request at info drowned what matters): method, route
 * template, status and duration. 5xx are logged by the error handler with their cause.
 */
export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', url: request.url.split('?')[0], statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    );
  });
}
