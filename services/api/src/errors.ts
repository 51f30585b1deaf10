import { DroverError, ERROR_CODES, coerceError, isStoreFull, type ErrorCode } from '@drover/core';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';

interface ValidationIssue {
  instancePath?: string;
  schemaPath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  /** With Ajv's verbose option: the failing keyword's value (an anyOf's branches), and the data it checked. */
  schema?: unknown;
  data?: unknown;
}

type SchemaNode = { const?: unknown; enum?: unknown[]; anyOf?: SchemaNode[]; type?: string; properties?: Record<string, SchemaNode>; required?: string[]; format?: string };

/** What a format needs, said so a person can write it. */
const FORMAT_HINTS: Record<string, string> = {
  'date-time': 'must be an ISO time with an offset, e.g. 2027-01-01T09:00:00+01:00 or 2027-01-01T08:00:00Z',
  date: 'must be a date, e.g. 2027-01-01',
  uri: 'must be a URL, e.g. https://example.com/hook',
};

/** A schema in a few words: `"whole"`, `"whole" | "failed"`, `integer`, `[...]`, `{steps: [...]}`. */
function shapeOf(n: SchemaNode | undefined): string {
  if (!n) return 'any';
  if (n.const !== undefined) return JSON.stringify(n.const);
  if (n.enum) return n.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (n.anyOf) return n.anyOf.map(shapeOf).join(' | ');
  if (n.type === 'array') return '[...]';
  if (n.type === 'object' && n.properties) {
    const keys = n.required && n.required.length > 0 ? n.required : Object.keys(n.properties);
    return `{${keys.map((k) => `${k}: ${shapeOf(n.properties![k])}`).join(', ')}}`;
  }
  return n.format ? `${n.type ?? 'string'} (${n.format})` : (n.type ?? 'any');
}

/**
 * One message per failed union (`anyOf`) instead of one per branch: "must be one of whole, failed" for literals,
 * "must be one of {mode: ...} or {steps: [...]}" for objects; the branches' own errors are dropped.
 */
function collapseUnions(issues: ValidationIssue[]): ValidationIssue[] {
  const unions = issues.filter((i) => i.keyword === 'anyOf' && Array.isArray(i.schema)).sort((a, b) => (b.schemaPath?.length ?? 0) - (a.schemaPath?.length ?? 0));
  const dropped = new Set<ValidationIssue>();
  const replaced = new Map<ValidationIssue, ValidationIssue>();
  for (const u of unions) {
    if (dropped.has(u)) continue;
    // An object that has exactly one branch's required fields meant that branch: its own errors say what is wrong.
    const data = u.data && typeof u.data === 'object' && !Array.isArray(u.data) ? (u.data as Record<string, unknown>) : undefined;
    const meant = data ? (u.schema as SchemaNode[]).map((b, n) => ({ b, n })).filter(({ b }) => b.type === 'object' && (b.required ?? []).length > 0 && b.required!.every((k) => k in data)) : [];
    const keep = meant.length === 1 ? `${u.schemaPath}/${meant[0]!.n}/` : undefined;
    for (const i of issues) if (i !== u && i.schemaPath?.startsWith(`${u.schemaPath}/`) && !(keep && i.schemaPath.startsWith(keep))) dropped.add(i);
    if (keep) {
      dropped.add(u);
      continue;
    }
    const branches = (u.schema as SchemaNode[]).filter((b) => b.type !== 'null');
    const nullable = branches.length < (u.schema as SchemaNode[]).length;
    const literals = branches.every((b) => b.const !== undefined);
    const allowed = literals ? branches.map((b) => String(b.const)).join(', ') : branches.map(shapeOf).join(' or ');
    replaced.set(u, { ...u, message: `must be one of ${allowed}${nullable ? ' (or null)' : ''}` });
  }
  return issues.filter((i) => !dropped.has(i)).map((i) => replaced.get(i) ?? i);
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
  let message = v.message ?? 'is invalid';
  if (field === '' && v.keyword === 'type' && (v.data === undefined || v.data === null) && context === 'body') message = 'a JSON body is required';
  if (v.keyword === 'enum' && Array.isArray(v.params?.allowedValues)) message = `must be one of ${(v.params.allowedValues as unknown[]).map(String).join(', ')}`;
  if (v.keyword === 'const') message = `must be ${JSON.stringify(v.params?.allowedValue)}`;
  if (v.keyword === 'format' && typeof v.params?.format === 'string' && FORMAT_HINTS[v.params.format]) message = FORMAT_HINTS[v.params.format]!;
  return { field: field ? `${context}/${field}` : context, message };
}

/** Redis or broker unreachable: the client should retry later, nothing was changed. */
export function isUnavailable(err: Error): boolean {
  // The second half: a Redis Cluster between a primary's death and its replica's promotion (commands refused, not run).
  return /enableOfflineQueue|MaxRetriesPerRequest|ECONNREFUSED|ECONNRESET|Connection is closed|not reachable|EPIPE|ETIMEDOUT|CLUSTERDOWN|Too many Cluster redirections|TRYAGAIN|None of startup nodes|Failed to refresh slots cache/i.test(
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
    details = collapseUnions(fe.validation as ValidationIssue[]).map((v) => describe(fe.validationContext ?? 'body', v));
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
