import { readFileSync } from 'node:fs';
import helmet from '@fastify/helmet';
import sseModule, { type fastifySSE } from '@fastify/sse';
import swagger from '@fastify/swagger';
import { ERROR_CODES } from '@drover/core';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyServerFactory, type FastifyServerOptions } from 'fastify';
import type { Principal, Scope } from './auth.js';
import type { ApiContext } from './context.js';
import { registerErrorHandling } from './errors.js';
import { serversFor, swaggerOptions } from './openapi.js';
import { eventRoutes } from './routes/events.js';
import { webhookRoutes } from './routes/webhooks.js';
import { workflowRoutes } from './routes/workflows.js';
import { healthRoutes } from './routes/health.js';
import { namespaceRoutes } from './routes/namespaces.js';
import { whoamiRoutes } from './routes/whoami.js';
import { UI_PREFIX, uiRoutes } from './routes/ui.js';
import { jobRoutes } from './routes/jobs.js';
import { jobPromoteRoutes } from './routes/job-promote.js';
import { coyotesRoutes } from './routes/compat/coyotes.js';
import { keeperRoutes } from './routes/compat/keeper.js';
import { meprocRoutes } from './routes/compat/meproc.js';
import { qscheduleRoutes } from './routes/compat/qschedule.js';
import { queueRoutes } from './routes/queues.js';
import { runnerRoutes } from './routes/runners.js';
import { scheduleRoutes } from './routes/schedules.js';
import { statsRoutes } from './routes/stats.js';
import { variableRoutes } from './routes/variables.js';
import { calendarRoutes } from './routes/calendars.js';
import { registerQueueScope } from './queue-scope.js';
import { registerOutboundCheck } from './outbound-check.js';
import { registerRequestGuard } from './request-guard.js';
import { registerValidation } from './validation.js';
import { registerTelemetry } from './telemetry.js';
import { registerRequestLog } from './request-log.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling (set by the auth hook; absent on open routes). */
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Scope a token needs for this route; `null` marks the few open routes. Missing means admin (fail closed). */
    scope?: Scope | null;
  }
}

export const DOCS_PREFIX = '/docs';

export interface AppOptions {
  bodyLimitBytes: number;
  /** The HTTP server to answer on (the namespace router); absent: Fastify's own. Only the app that listens has one. */
  serverFactory?: FastifyServerFactory;
  /** Requests per minute per token (open routes: per client address); 0 or absent: no limit. Counted in Redis, so shared by replicas. */
  rateLimitPerMinute?: number;
  /** Requests with a missing or unknown token per minute per client address, then 429 for the address; 0 or absent: no limit. */
  authFailLimitPerMinute?: number;
  /** A request must arrive whole within this, ms. */
  requestTimeoutMs?: number;
  logger?: FastifyServerOptions['loggerInstance'];
  /** DROVER_PUBLIC_URL: where clients reach this API (the OpenAPI document's `servers`); default: the address a request came to. */
  publicUrl?: string;
}

const API_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Builds the Fastify app (plugins, auth, routes) without listening; tests use it with inject or listen(0). */
export async function buildApp(ctx: ApiContext, opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    // Replaced by registerRequestLog: one line per request, at debug.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
    // Keep client-chosen paths like /v1/jobs/ from missing their route.
    routerOptions: { ignoreTrailingSlash: true },
    requestIdHeader: 'x-request-id',
    // Errors raised before routing (malformed URL, over-long parameter) get the same envelope as the rest.
    frameworkErrors: (err, _request, reply) => {
      const code = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'URI_TOO_LONG' : 'VALIDATION';
      void (reply as unknown as FastifyReply).status(ERROR_CODES[code].status).send({ error: { code, message: err.message } });
    },
  }) as unknown as FastifyInstance;
  registerValidation(app);
  registerErrorHandling(app);
  // First hook: rejected requests (401, 429) are measured and traced too.
  registerTelemetry(app, ctx.metrics);
  registerRequestLog(app);

  // An empty body labelled JSON (scripts that always send the header) on an action without a body is no body, not
  // a 400: a script that ignores the status would believe it cancelled or paused something. Routes that need a body
  // still refuse it, by their schema.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (String(body).trim() === '') done(null, undefined);
    else void json(request, String(body), done);
  });
  // `curl -d '{...}'` sends JSON labelled as a form; read JSON-looking form bodies as JSON so such scripts work.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body).trim();
    if (text.startsWith('{') || text.startsWith('[')) {
      try {
        done(null, JSON.parse(text));
      } catch (err) {
        done(err as Error, undefined);
      }
      return;
    }
    // Repeated fields (args=a&args=b) become arrays.
    const form: Record<string, string | string[]> = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const prev = form[k];
      form[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    done(null, form);
  });

  // Who is calling, and whether they may call now (token budgets, failed-authentication budget per address).
  registerRequestGuard(app, ctx, {
    rateLimitPerMinute: opts.rateLimitPerMinute ?? 0,
    authFailLimitPerMinute: opts.authFailLimitPerMinute ?? 0,
    // The API docs and the dashboard's static files are open; what they call is not.
    isOpenPath: (path) => path.startsWith(DOCS_PREFIX) || path === UI_PREFIX || path.startsWith(`${UI_PREFIX}/`),
  });

  registerQueueScope(app);
  registerOutboundCheck(app, ctx.outbound);

  // Security headers (CSP and friends) for everything served, the docs and dashboard included. CORS stays off.
  // Without upgrade-insecure-requests and HSTS: over plain HTTP from any host name but localhost, the browser would
  // fetch the dashboard's assets over https and show a blank page. HSTS belongs to the TLS terminator in front.
  await app.register(helmet, {
    global: true,
    hsts: false,
    contentSecurityPolicy: { useDefaults: true, directives: { upgradeInsecureRequests: null } },
  });
  await app.register(swagger, swaggerOptions(API_VERSION));
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    transformSpecification: (doc, request) => ({ ...doc, servers: serversFor(request, opts.publicUrl) }),
  });

  // The package's default export is the fastify-plugin wrapped one (reply.sse on every route); its types call it a namespace.
  await app.register(sseModule as unknown as typeof fastifySSE, { heartbeatInterval: 15_000 });
  healthRoutes(app, ctx);
  whoamiRoutes(app, ctx.namespace);
  namespaceRoutes(app, ctx);
  eventRoutes(app, ctx);
  webhookRoutes(app, ctx);
  workflowRoutes(app, ctx);
  jobRoutes(app, ctx);
  jobPromoteRoutes(app, ctx);
  scheduleRoutes(app, ctx);
  queueRoutes(app, ctx);
  runnerRoutes(app, ctx);
  statsRoutes(app, ctx);
  variableRoutes(app, ctx);
  calendarRoutes(app, ctx);
  // Each adapter in its own plugin scope: its error handler answers in its clients' envelope.
  await app.register(async (scope) => meprocRoutes(scope, ctx));
  await app.register(async (scope) => coyotesRoutes(scope, ctx));
  await app.register(async (scope) => keeperRoutes(scope, ctx));
  await app.register(async (scope) => qscheduleRoutes(scope, ctx));
  await uiRoutes(app);
  return app;
}
