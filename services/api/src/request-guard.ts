import { DroverError, coerceError, selectionHas } from '@drover/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { namespacesOf, parseBearer, tokenDigest, type Principal } from './auth.js';
import { noSuch, requestNamespace } from './namespace-router.js';
import type { ApiContext } from './context.js';
import { WindowCounter, type WindowCount } from './rate-limit.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: not counted against the caller's request budget (probes, metrics scrapes). Failed authentication always counts. */
    rateLimit?: false;
    /**
     * Where else than the Authorization header this route's clients send the token, for the legacy APIs whose
     * clients did: `query` (`?token=`), `body` (a `token` field of a JSON or form body). The header wins when both
     * are there; the check and the budgets are the same. Logs and traces never carry query strings.
     */
    tokenIn?: readonly ('query' | 'body')[];
  }
}

/** The Authorization header, or the token a legacy client put where its route allows (as a Bearer header). */
function authorizationOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  const where = request.routeOptions.config.tokenIn;
  if (header !== undefined || !where) return header;
  const from = (o: unknown): unknown => (o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>).token : undefined);
  const token = (where.includes('query') ? from(request.query) : undefined) ?? (where.includes('body') ? from(request.body) : undefined);
  return typeof token === 'string' && token !== '' ? `Bearer ${token}` : undefined;
}

export interface GuardOptions {
  /** Requests per minute per token (open routes: per client address); 0: no limit. */
  rateLimitPerMinute: number;
  /** Requests with a missing, malformed or unknown token per minute per client address; 0: no limit. */
  authFailLimitPerMinute: number;
  /** Paths served without a token (the API docs, the dashboard's files), besides routes whose scope is null. */
  isOpenPath: (path: string) => boolean;
}

/** The budget key of a token: its digest (a prefix of it), so every spelling of the header spends the same budget. */
export const tokenKey = (token: string): string => `t:${tokenDigest(token).slice(0, 32)}`;

/**
 * The first gate of every request: who is calling (`request.principal`), and whether they may call now.
 * - A known token spends its own budget (`rateLimitPerMinute`), keyed on the parsed token, not the raw header.
 * - A missing, malformed or unknown token spends the client address's failure budget (`authFailLimitPerMinute`).
 *   Once it is spent, every request from that address that needs a token answers 429 until the window ends, a
 *   correct token included: otherwise a 2xx among the 429s would still tell a guesser which guess was right.
 * - Open routes (docs, dashboard files) are counted per address; probes (`rateLimit: false`, no token) never are.
 * Counts live in Redis, shared by replicas; see WindowCounter for what happens when Redis cannot count.
 */
export function registerRequestGuard(app: FastifyInstance, ctx: ApiContext, opts: GuardOptions): void {
  // Shared by every namespace (kept in the default one's): a token's budget is one, whichever namespace it calls.
  const counter = new WindowCounter(ctx.store.redis, ctx.deploymentKeys.name('rate'));
  const { rateLimitPerMinute: perToken, authFailLimitPerMinute: perAddress } = opts;

  // A route that takes the token from its body is checked once the body is parsed; every other one at once.
  const bodyToken = (request: FastifyRequest): boolean => request.routeOptions.config.tokenIn?.includes('body') === true;
  app.addHook('onRequest', async (request, reply) => {
    if (!bodyToken(request)) await guard(request, reply);
  });
  app.addHook('preValidation', async (request, reply) => {
    if (bodyToken(request)) await guard(request, reply);
  });

  async function guard(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const path = request.routeOptions.url ?? '';
    const config = request.routeOptions.config;
    const counted = config.rateLimit !== false;
    if (config.scope === null || opts.isOpenPath(path)) {
      if (counted && perToken > 0) {
        const { taken } = await counter.hit(`a:${request.ip}`, undefined);
        if (taken && taken.count > perToken) throw limited(reply, perToken, taken, `more than ${perToken} requests per minute from this address`);
        if (taken) budgetHeaders(reply, perToken, taken);
      }
      return;
    }
    const failKey = `f:${request.ip}`;
    // Unknown routes fall through to the 404 handler only for authenticated callers.
    const needed = config.scope ?? (path ? 'admin' : 'read');
    let principal: Principal | undefined;
    let refused: Error | undefined;
    const authorization = authorizationOf(request);
    try {
      principal = ctx.tokens.authorize(authorization, needed);
    } catch (err) {
      refused = coerceError(err);
    }
    const token = parseBearer(authorization);
    // FORBIDDEN means the token is known (its scope falls short): that is the token's business, not a guess.
    const known = principal !== undefined || (refused instanceof DroverError && refused.code === 'FORBIDDEN');
    if (!known || token === undefined) {
      if (perAddress > 0) {
        const { taken } = await counter.hit(failKey, undefined);
        if (taken && taken.count > perAddress) throw limited(reply, perAddress, taken, failMessage(perAddress));
      }
      throw refused ?? new DroverError('UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)');
    }
    const { taken, peeked } = await counter.hit(perToken > 0 && counted ? tokenKey(token) : undefined, perAddress > 0 ? failKey : undefined);
    if (peeked && peeked.count >= perAddress) throw limited(reply, perAddress, peeked, failMessage(perAddress));
    if (taken && taken.count > perToken) throw limited(reply, perToken, taken, `more than ${perToken} requests per minute for this token`);
    if (taken) budgetHeaders(reply, perToken, taken);
    if (refused) throw refused;
    // The front door sent the request here by its namespace; a token in a body (legacy routes) is only seen now.
    const asked = requestNamespace(request.raw, principal);
    if (typeof asked !== 'string') throw new DroverError('VALIDATION', asked.problem);
    if (asked !== ctx.namespace || !selectionHas(namespacesOf(principal!), ctx.namespace)) throw new DroverError('NOT_FOUND', noSuch(asked));
    request.principal = principal;
  }
}

const failMessage = (n: number): string =>
  `more than ${n} requests with a missing or unknown token from this address in a minute; every request from it that needs a token is refused until then`;

function budgetHeaders(reply: FastifyReply, limit: number, w: WindowCount): void {
  void reply.header('x-ratelimit-limit', limit);
  void reply.header('x-ratelimit-remaining', Math.max(0, limit - w.count));
  void reply.header('x-ratelimit-reset', Math.ceil(w.resetMs / 1000));
}

function limited(reply: FastifyReply, limit: number, w: WindowCount, why: string): DroverError {
  const seconds = Math.ceil(w.resetMs / 1000);
  void reply.header('retry-after', seconds);
  void reply.header('x-ratelimit-limit', limit);
  void reply.header('x-ratelimit-remaining', 0);
  void reply.header('x-ratelimit-reset', seconds);
  return new DroverError('RATE_LIMITED', `${why}; retry in ${seconds} s`, { limit, retryAfterSeconds: seconds });
}

/** For handlers that need the caller's budget identity (stream slots): the token's key, else the address's. */
export function callerKey(request: FastifyRequest): string {
  const token = parseBearer(authorizationOf(request));
  return token ? tokenKey(token) : `a:${request.ip}`;
}
