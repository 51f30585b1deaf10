import { DroverError, ERROR_CODES, coerceError, isStoreFull, type ErrorCode } from '@drover/core';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';

interface ValidationIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `body/env/PATH: must be string`, naming the field a person has to fix. */
function describe(context: string, v: ValidationIssue): { field: string; message: string } {
  let field = (v.instancePath ?? '').replace(/^\//, '');
  if (v.keyword === 'additionalProperties' && typeof v.params?.additionalProperty === 'string') {
    field = field ? `${field}/${v.params.additionalProperty}` : v.params.additionalProperty;
    return { field: `${context}/${field}`, message: 'unknown field' };
  }
  if (v.keyword === 'required' && typeof v.params?.missingProperty === 'string') {
    field = field ? `${field}/${v.params.missingProperty}` : v.params.missingProperty;
    return { field: `${context}/${field}`, message: 'is required' };
  }
  return { field: field ? `${context}/${field}` : context, message: v.message ?? 'is invalid' };
}

/** Redis or broker unreachable: the client should retry later, nothing was changed. */
export function isUnavailable(err: Error): boolean {
  return /enableOfflineQueue|MaxRetriesPerRequest|ECONNREFUSED|ECONNRESET|Connection is closed|not reachable|EPIPE|ETIMEDOUT/i.test(
    `${err.name} ${err.message}`,
  );
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
};

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

/** Classifies anything a handler threw: a stable code, a message fit for the caller (5xx hide internals), details. */
export function describeError(thrown: unknown, request: FastifyRequest): ErrorBody {
  const err = coerceError(thrown);
  let code: ErrorCode;
  let message = err.message;
  let details: unknown;
  const fe = err as FastifyError;
  if (err instanceof DroverError) {
    code = err.code;
    details = err.details;
  } else if (fe.validation) {
    code = 'VALIDATION';
    details = fe.validation.map((v) => describe(fe.validationContext ?? 'body', v as ValidationIssue));
    message = (details as { field: string; message: string }[]).map((d) => `${d.field}: ${d.message}`).join('; ');
  } else if (fe.code && FASTIFY_CODES[fe.code]) {
    code = FASTIFY_CODES[fe.code]!;
  } else if (err instanceof SyntaxError || (fe.statusCode === 400 && fe.code?.startsWith('FST_ERR_CTP'))) {
    code = 'INVALID_JSON';
    message = `the body is not valid JSON: ${err.message}`;
  } else if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    code = fe.statusCode === 404 ? 'NOT_FOUND' : fe.statusCode === 413 ? 'BODY_TOO_LARGE' : fe.statusCode === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'VALIDATION';
  } else if (isStoreFull(err)) {
    code = 'STORE_FULL';
    message = 'the store (Redis) is full: it reached maxmemory and refuses writes; nothing was changed, retry once memory is freed';
    request.log.error({ err }, 'Redis is full (maxmemory): writes are refused');
  } else if (isUnavailable(err)) {
    code = 'UNAVAILABLE';
    message = 'a dependency (Redis or the broker) is unreachable; nothing was changed, retry later';
    request.log.warn({ err }, 'dependency unavailable');
  } else {
    code = 'INTERNAL';
    message = 'internal error; see the server log for the request id';
    request.log.error({ err }, 'request failed');
  }
  const body: ErrorBody = { code, message };
  if (details !== undefined) body.details = details;
  return body;
}

/** The one place errors become HTTP: `{"error": {"code", "message", "details"?}}`. Adapters set their own envelopes. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((thrown: FastifyError | DroverError | Error, request, reply) => {
    const body = describeError(thrown, request);
    void reply.status(ERROR_CODES[body.code].status).send({ error: body });
  });

  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });
}
