import {
  ROOT_CONTEXT, SpanKind, SpanStatusCode, context, defaultTextMapGetter, isSpanContextValid, trace,
  type Attributes, type Context, type Span,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';
import { VERSION } from '../version.js';

export { SpanKind, SpanStatusCode, type Context, type Span };

type Env = Readonly<Record<string, string | undefined>>;

/** W3C trace context, used directly so parsing works whether or not the SDK registered a global propagator. */
const w3c = new W3CTraceContextPropagator();

let provider: NodeTracerProvider | undefined;

/** Tracing is on only when an OTLP endpoint is configured and the SDK is not disabled (standard OTel variables). */
export function tracingRequested(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export function tracingEnabled(): boolean {
  return provider !== undefined;
}

/**
 * Starts the OpenTelemetry SDK for this process (once): OTLP over HTTP, batched, W3C propagation, resource from
 * OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES or `service`. Without an endpoint nothing is set up and every span
 * Drover starts is a no-op. Returns the shutdown that flushes pending spans.
 */
export async function startTracing(service: string, env: Env, log: Logger): Promise<() => Promise<void>> {
  if (provider || !tracingRequested(env)) return async () => undefined;
  // Loaded only when tracing is on: a runner without it carries none of the SDK.
  const [{ OTLPTraceExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }, { BatchSpanProcessor, NodeTracerProvider }] =
    await Promise.all([import('@opentelemetry/exporter-trace-otlp-http'), import('@opentelemetry/resources'), import('@opentelemetry/sdk-trace-node')]);
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': service, 'service.version': VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  provider.register();
  log.info({ endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'tracing to OTLP');
  const p = provider;
  return async () => {
    await p.shutdown().catch((err: unknown) => log.warn({ err: coerceError(err) }, 'flushing traces failed'));
  };
}

export function tracer() {
  return trace.getTracer('drover', VERSION);
}

/** Starts a span under `parent` (a request's, or one rebuilt from a job record). */
export function startSpan(name: string, kind: SpanKind, parent: Context, attributes: Attributes = {}): Span {
  return tracer().startSpan(name, { kind, attributes }, parent);
}

/** The W3C `traceparent` of a span, or undefined for a no-op span (tracing off). */
export function traceparentOf(span: Span): string | undefined {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return undefined;
  const carrier: Record<string, string> = {};
  w3c.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (_c, k, v) => (carrier[k] = v) });
  return carrier.traceparent;
}

/** The context a stored or received `traceparent` stands for (the root context when there is none). */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return w3c.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** The context an incoming HTTP request carries in its `traceparent` / `tracestate` headers. */
export function contextFromHeaders(headers: Record<string, string | string[] | undefined>): Context {
  return w3c.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
}

/** `trace_id` / `span_id` for log lines, the field names OpenTelemetry's log correlation uses. */
export function traceFields(span: Span | undefined): { trace_id?: string; span_id?: string } {
  const sc = span?.spanContext();
  if (!sc || !isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

/** `parent` with `span` as its current span: the parent of spans started under it. */
export function contextWithSpan(parent: Context, span: Span): Context {
  return trace.setSpan(parent, span);
}

/** Runs `fn` with `span` active, so log lines (see createLogger's mixin) and child spans find it. */
export function withSpan<T>(span: Span, parent: Context, fn: () => T): T {
  return context.with(trace.setSpan(parent, span), fn);
}

/** Ends a span with an error status, recording the exception. */
export function failSpan(span: Span, err: unknown): void {
  const e = coerceError(err);
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}

/** The active span's ids, for the logger's mixin: empty when nothing is traced. */
export function activeTraceFields(): { trace_id?: string; span_id?: string } {
  return provider ? traceFields(trace.getSpan(context.active())) : {};
}
