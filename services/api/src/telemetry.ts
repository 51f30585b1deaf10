import { SpanKind, contextFromHeaders, contextWithSpan, failSpan, startSpan, traceFields, tracingEnabled, type Context, type DroverMetrics, type Span } from '@drover/core';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's trace context (its server span), parent of what the handler starts; absent when not traced. */
    traceContext?: Context;
    serverSpan?: Span;
  }
}

/**
 * Request duration by route template (never the raw URL: ids would make the label unbounded), and with tracing on,
 * a server span per request that continues a caller's `traceparent`, with the trace id on the request's log lines.
 */
export function registerTelemetry(app: FastifyInstance, metrics: DroverMetrics): void {
  const traced = tracingEnabled();
  app.decorateRequest('traceContext', undefined);
  app.decorateRequest('serverSpan', undefined);
  if (traced) {
    app.addHook('onRequest', async (request) => {
      const parent = contextFromHeaders(request.headers);
      const route = request.routeOptions.url;
      const span = startSpan(`${request.method} ${route ?? 'unmatched'}`, SpanKind.SERVER, parent, {
        'http.request.method': request.method,
        'url.path': request.url.split('?')[0] ?? '',
        ...(route ? { 'http.route': route } : {}),
      });
      request.serverSpan = span;
      request.traceContext = contextWithSpan(parent, span);
      request.log = request.log.child(traceFields(span));
    });
    app.addHook('onError', async (request, _reply, err) => {
      if (request.serverSpan) failSpan(request.serverSpan, err);
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    const span = request.serverSpan;
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      span.end();
    }
  });
}
