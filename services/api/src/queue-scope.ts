import { DroverError, isJobId, type ScheduleDef } from '@drover/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from './auth.js';
import type { ApiContext } from './context.js';

/**
 * How a queue-restricted token is confined on a route, declared in the route's config as `queues`:
 * - `'none'`: the route touches nothing that belongs to a queue (health, whoami, cron preview).
 * - `'handler'`: a list or a create; the handler narrows the list with `canSee` / `allowedQueues`, or checks the
 *   queues named in the body with `assertQueueAllowed` (submissions, via assertSubmittable).
 * - `'global'`: state shared by every queue (runner drain, webhook subscriptions): restricted tokens get 403,
 *   whatever the resource, so the answer says nothing about it.
 * - a `ResourceGuard`: the route addresses one resource; its queues are resolved and checked before the body is
 *   validated or anything changes. A resource of another queue answers exactly what a missing one answers (404),
 *   so a restricted token cannot tell "elsewhere" from "nowhere".
 * A route that declares nothing is `'global'`: a new route is closed to restricted tokens until someone decides.
 */
export type QueueGuard = 'none' | 'handler' | 'global' | ResourceGuard;

export interface ResourceGuard {
  /** The queues the addressed resource belongs to (all must be allowed); null when there is no such resource. */
  queuesOf(request: FastifyRequest): Promise<string[] | null>;
  /** The error the route gives a resource that does not exist. */
  missing(request: FastifyRequest): DroverError;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Queue scoping of restricted tokens on this route (see queue-scope.ts); missing means 'global'. */
    queues?: QueueGuard;
  }
}

/** True when the token may see every one of `queues` (always, for a token without a queue restriction). */
export function canSee(principal: Principal | undefined, queues: readonly string[]): boolean {
  const allowed = principal?.queues;
  return !allowed || queues.every((q) => allowed.includes(q));
}

/** The queues of a workflow's steps. */
export function workflowQueues(steps: readonly { job: { queue?: string | undefined } }[], defaultQueue = 'default'): string[] {
  return [...new Set(steps.map((s) => s.job.queue ?? defaultQueue))];
}

/** The queues of the job specs a schedule fires (its job's, or every step's). */
export function scheduleQueues(def: Pick<ScheduleDef, 'job' | 'workflow'>, defaultQueue = 'default'): string[] {
  if (def.workflow) return workflowQueues(def.workflow.steps, defaultQueue);
  return def.job ? [def.job.queue ?? defaultQueue] : [];
}

/** A path parameter as the client sent it (routes' own schemas validate it later; guards run first). */
const param = (request: FastifyRequest, name: string): string => {
  const v = (request.params as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' ? v : '';
};

/** Guards shared by the routes: each resolves the addressed resource's queues in one small read. */
export function guards(ctx: ApiContext) {
  const jobQueue = async (id: string): Promise<string | null> => {
    if (!isJobId(id)) return null;
    const live = await ctx.store.queueOf(id);
    if (live) return live;
    return ctx.archive ? ((await ctx.archive.get(id))?.queue ?? null) : null;
  };
  return {
    jobQueue,
    /** A job addressed by a path parameter (default `id`). */
    job: (name = 'id', missing?: (r: FastifyRequest) => DroverError): ResourceGuard => ({
      queuesOf: async (r) => {
        const q = await jobQueue(param(r, name));
        return q === null ? null : [q];
      },
      missing: missing ?? ((r) => new DroverError('NOT_FOUND', `no job ${param(r, name)}`)),
    }),
    schedule: (name = 'name'): ResourceGuard => ({
      queuesOf: async (r) => {
        const s = await ctx.schedules.get(param(r, name));
        return s ? scheduleQueues(s) : null;
      },
      missing: (r) => new DroverError('NOT_FOUND', `no schedule ${param(r, name)}`),
    }),
    workflow: (name = 'id'): ResourceGuard => ({
      queuesOf: async (r) => {
        const wf = await ctx.workflows.get(param(r, name));
        return wf ? workflowQueues(wf.steps) : null;
      },
      missing: (r) => new DroverError('NOT_FOUND', `no workflow ${param(r, name)}`),
    }),
    /** A queue named by a path parameter: it is its own scope (existence is for the handler to say). */
    queue: (name = 'name', missing?: (r: FastifyRequest) => DroverError): ResourceGuard => ({
      queuesOf: async (r) => [param(r, name)],
      missing: missing ?? ((r) => new DroverError('NOT_FOUND', `no queue ${param(r, name)}`)),
    }),
    /** A resource that always lives in one fixed queue (Meproc's tasks, in DROVER_COMPAT_QUEUE). */
    fixed: (queue: string, missing: () => DroverError): ResourceGuard => ({ queuesOf: async () => [queue], missing }),
  };
}

/** A route as registered, with its scope and queue guard: the security tests walk this table. */
export interface RouteEntry {
  method: string;
  url: string;
  scope: unknown;
  guard: QueueGuard | undefined;
}

const tables = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route of an app built by buildApp (HEAD twins left out). */
export function routeTable(app: FastifyInstance): readonly RouteEntry[] {
  return tables.get(app) ?? [];
}

/**
 * The one place queue restrictions are enforced for addressed resources: a preValidation hook reading each
 * route's `queues` guard. Unrestricted tokens pay nothing (no lookup).
 */
export function registerQueueScope(app: FastifyInstance): void {
  const table: RouteEntry[] = [];
  tables.set(app, table);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') table.push({ method, url: route.url, scope: route.config?.scope, guard: route.config?.queues });
    }
  });
  app.addHook('preValidation', async (request) => {
    const principal = request.principal;
    // Unknown routes (no url) go on to the 404 handler.
    if (!principal?.queues || !request.routeOptions.url) return;
    const guard = request.routeOptions.config.queues ?? 'global';
    if (guard === 'none' || guard === 'handler') return;
    if (guard === 'global') {
      throw new DroverError('FORBIDDEN', `this token is restricted to queues ${principal.queues.join(', ')}; this route acts on every queue`);
    }
    const queues = await guard.queuesOf(request);
    if (queues === null || !canSee(principal, queues)) throw guard.missing(request);
  });
}
