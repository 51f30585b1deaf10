import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifyRequest, RouteOptions } from 'fastify';

/** The OpenAPI extension that names the scope an operation needs: `read`, `submit`, `admin`, or `open` (no token). */
export const SCOPE_EXTENSION = 'x-drover-scope';
export type DocumentedScope = 'read' | 'submit' | 'admin' | 'open';

const SCOPE_SENTENCE: Record<DocumentedScope, string> = {
  open: 'Open: no token needed.',
  read: 'Needs a token with scope `read` (a `submit` or `admin` token will do).',
  submit: 'Needs a token with scope `submit` (an `admin` token will do).',
  admin: 'Needs a token with scope `admin`.',
};

/** What a token restricted to some queues meets on the route (its config's `queues`, see queue-scope.ts). */
const QUEUE_SENTENCE: Record<string, string> = {
  handler: 'A token restricted to some queues sees and touches only theirs.',
  global: 'Not for tokens restricted to some queues (403).',
  resource: "A token restricted to some queues gets 404 for another queue's resource, as for a missing one.",
};

const STATUS_TEXT: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted: still in progress',
  204: 'No content',
  400: 'Bad input: nothing was changed',
  401: 'No token, or an unknown one',
  403: "The token's scope or queues do not allow this",
  404: 'Not found (or not visible to this token)',
  405: 'Method not allowed',
  409: 'Conflict with the current state: nothing was changed',
  413: 'Body too large',
  415: 'Unsupported media type',
  429: 'Rate limited: retry after the Retry-After header',
  503: 'Redis or the broker is unreachable: nothing was changed, retry later',
};

/** The scope the route's auth hook enforces: `null` is open, a missing one is admin (the hook fails closed too). */
export function documentedScope(config: RouteOptions['config']): DocumentedScope {
  const scope = (config as { scope?: string | null } | undefined)?.scope;
  if (scope === null) return 'open';
  return scope === 'read' || scope === 'submit' ? scope : 'admin';
}

function queueSentence(config: RouteOptions['config']): string | undefined {
  const queues = (config as { queues?: unknown } | undefined)?.queues;
  if (queues === 'none') return undefined;
  if (queues === 'handler') return QUEUE_SENTENCE.handler;
  if (queues === undefined || queues === 'global') return QUEUE_SENTENCE.global;
  return QUEUE_SENTENCE.resource;
}

/**
 * Per operation: the scope from the same route config the auth hook reads (so the document cannot drift from what
 * is enforced) as `x-drover-scope` and a sentence of the description; open routes need no security; responses get
 * a description of what their status means.
 */
export function documentRoute({ schema, url, route }: { schema: Record<string, unknown>; url: string; route: RouteOptions }): { schema: Record<string, unknown>; url: string } {
  if (!schema || schema.hide) return { schema, url };
  const scope = documentedScope(route.config);
  const sentences = [SCOPE_SENTENCE[scope], scope === 'open' ? undefined : queueSentence(route.config)].filter((s): s is string => s !== undefined);
  const own = typeof schema.description === 'string' ? schema.description : '';
  const description = own.includes(SCOPE_SENTENCE[scope]) ? own : [own, ...sentences].filter(Boolean).join('\n\n');
  const response = schema.response as Record<string, Record<string, unknown>> | undefined;
  const described = response
    ? Object.fromEntries(
        Object.entries(response).map(([status, s]) => [status, s.description || s['x-response-description'] ? s : { ...s, 'x-response-description': STATUS_TEXT[status] ?? 'Response' }]),
      )
    : undefined;
  return {
    url,
    schema: {
      ...schema,
      description,
      [SCOPE_EXTENSION]: scope,
      ...(scope === 'open' ? { security: [] } : { headers: withNamespaceHeader(schema.headers) }),
      ...(described ? { response: described } : {}),
    },
  };
}

export const DOCUMENT_TAGS = [
  { name: 'jobs', description: 'Submit, list, follow, retry and cancel jobs.' },
  { name: 'schedules', description: 'Cron schedules that fire jobs or workflows.' },
  { name: 'workflows', description: 'DAGs of steps, each a job.' },
  { name: 'queues', description: 'Queue settings (concurrency, rate, pause) and live counts.' },
  { name: 'runners', description: 'The runners: who is up, what runs where, drain and resume.' },
  { name: 'events', description: 'Lifecycle events as a JSON page or a Server-Sent Events stream.' },
  { name: 'webhooks', description: 'Signed event deliveries to URLs.' },
  { name: 'stats', description: "Rolling per-minute aggregates (the dashboard's charts)." },
  { name: 'health', description: 'Probes, metrics and the calling token.' },
  { name: 'namespaces', description: 'Namespaces: separate sets of queues, jobs, schedules, workflows, events and webhooks, each in a cluster slot of its own. A request names its namespace with the Drover-Namespace header or ?namespace=.' },
  { name: 'variables', description: 'Operator variables: environment of every job started after a change (values are never returned).' },
  { name: 'compat-meproc', description: "Meproc's process API (`/proc`) on Drover: its own envelope `{code, msg, data}`." },
  { name: 'compat-coyotes', description: "Coyotes' channel API (`/channels`, `/delay-tasks`) on Drover: its own envelope `{status_code, message, data}`." },
  { name: 'compat-keeper', description: "Keeper's REST control API (`/task/*`, `/job/kill`, `/action/kill`, `/global/set`) on Drover: a job is a schedule, a task one run, an action a step's job; bare JSON answers." },
  { name: 'compat-qschedule', description: "qschedule's HTTP interface (`/api/*.do`) on Drover: a job is a schedule, a task one run; its own envelope `{ret, message, data}`." },
];

const DESCRIPTION = [
  'Run shell commands as jobs across a fleet of runners.',
  'Authenticate with `Authorization: Bearer <token>`. A token has one scope: `read` (read only), `submit` (read, and',
  'submit or cancel jobs, schedules and workflows) or `admin` (everything, including queue settings, runners and',
  'webhooks); it may also be restricted to some queues. Each operation states the scope it needs in',
  '`x-drover-scope` (`read`, `submit`, `admin`, or `open` for the few that need no token) and in its description.',
  'Errors of the /v1 API are `{"error": {"code", "message", "details"?}}`; the compatibility adapters answer in',
  'the envelopes of the systems they stand in for.',
  'Every operation works in one namespace: the one the `Drover-Namespace` header, `?namespace=` or a path prefix',
  '`/ns/<name>` names, else the token\'s only namespace, else `default`. A namespace the token may not use answers',
  'like one that does not exist (404).',
].join(' ');

/** The header every operation takes (namespace-router.ts), in the document only: the front door reads it. */
const NAMESPACE_HEADER_DOC = { type: 'string', description: 'The namespace of this request (default: the token\'s only namespace, else `default`)' };

function withNamespaceHeader(headers: unknown): Record<string, unknown> {
  const h = (headers ?? { type: 'object', properties: {} }) as { properties?: Record<string, unknown> };
  return { ...h, type: 'object', properties: { ...(h.properties ?? {}), 'drover-namespace': NAMESPACE_HEADER_DOC } };
}

/**
 * The document's `servers`: DROVER_PUBLIC_URL when it is set (what clients reach through a proxy or ingress),
 * else the address the document was fetched from, so a client generated from it points where its user went.
 */
export function serversFor(request: FastifyRequest, publicUrl: string | undefined): { url: string; description: string }[] {
  if (publicUrl) return [{ url: publicUrl.replace(/\/+$/, ''), description: 'This Drover (DROVER_PUBLIC_URL)' }];
  return [{ url: `${request.protocol}://${request.host}`, description: 'This Drover, as this document was fetched' }];
}

/** @fastify/swagger options: the document's frame, and documentRoute applied to every route. */
export function swaggerOptions(version: string): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Drover API', version, description: DESCRIPTION, license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' } },
      tags: DOCUMENT_TAGS,
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A Drover token (DROVER_ADMIN_TOKEN, DROVER_TOKENS_FILE).' } } },
      security: [{ bearer: [] }],
    },
    transform: documentRoute as unknown as FastifyDynamicSwaggerOptions['transform'],
  };
}
