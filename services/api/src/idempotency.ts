import { createHash } from 'node:crypto';
import { DroverError, idempotencyKeyReused, publishQueued, readBinding, type IdempotencyClaim, type JobRecord, type Replay } from '@drover/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Principal } from './auth.js';
import type { ApiContext } from './context.js';
import { canSee } from './queue-scope.js';

/**
 * `Idempotency-Key` on the submitting routes (POST /v1/jobs, /v1/jobs/batch, /v1/workflows, /v1/schedules/:name/trigger).
 *
 * The key is scoped to the token's name and bound, in the same Redis script that creates the jobs, to what the
 * request created. A request seen before (same key, same route, same body) creates nothing and is answered with the
 * same status and the same job ids, marked `Idempotent-Replayed: true`; the same key with another body or route is
 * 409 IDEMPOTENCY_KEY_REUSED. Because the binding and the jobs are written together, there is no "in progress" state
 * to wait for: a concurrent twin either creates (its script ran first) or replays (it ran second). Requests refused
 * with a 4xx create nothing and bind nothing, so the same key may be sent again once the problem is fixed.
 */

export const DEFAULT_IDEMPOTENCY_TTL_MS = 86_400_000;
const HEADER = 'idempotency-key';
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;
const KEY_RULE = 'must be 1 to 255 printable ASCII characters';

/** The request header as the routes' schemas declare it (validated there, and shown in the OpenAPI document). */
export const IdempotencyHeaders = Type.Object({
  [HEADER]: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x20-\\x7E]+$',
      description:
        'Makes the submission safe to retry (after a 503, a timeout or a reset connection): the same key with the same body within DROVER_IDEMPOTENCY_TTL_MS (24 h) answers the first result (same status, same job ids, header Idempotent-Replayed: true) and creates nothing; with another body, 409 IDEMPOTENCY_KEY_REUSED. Scoped to the token.',
    }),
  ),
});

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** JSON with object keys sorted at every level: two bodies that parse the same hash the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * The request's claim on its Idempotency-Key, or undefined without one. The digest covers the token's name, so two
 * tenants' keys never meet; the fingerprint covers the route, its path parameters and the parsed body.
 */
export function claimOf(request: FastifyRequest, ctx: ApiContext): IdempotencyClaim | undefined {
  const raw = request.headers[HEADER];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
    throw new DroverError('VALIDATION', `headers/${HEADER}: ${KEY_RULE}`, [{ field: `headers/${HEADER}`, message: KEY_RULE }]);
  }
  const who = request.principal?.name ?? '';
  return {
    digest: sha256(`${who}\n${raw}`),
    fingerprint: sha256(`${request.method} ${request.routeOptions.url ?? ''}\n${canonicalJson(request.params ?? {})}\n${canonicalJson(request.body ?? null)}`),
    ttlMs: ctx.idempotencyTtlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS,
  };
}

/**
 * Looks the claim up before the request does any work: a replay is answered from what it created, a key of another
 * request is refused. The creating script checks again, which settles requests racing each other.
 */
export async function priorResult(ctx: ApiContext, claim: IdempotencyClaim | undefined): Promise<Replay | null> {
  if (!claim) return null;
  const seen = await readBinding(ctx.store.redis, ctx.store.keys, claim);
  if (seen === 'reused') throw idempotencyKeyReused();
  return seen;
}

/**
 * The current records of a replay's jobs, by id. A job whose first publish was never confirmed (the request that
 * created it got a 503, or its API died) is published now, so a replay answers 201 on the same terms as the first
 * request: stored and handed to the broker. A duplicate delivery is harmless (the runner's claim drops it).
 */
export async function replayedJobs(ctx: ApiContext, replay: Replay, principal: Principal | undefined): Promise<Map<string, JobRecord>> {
  const ids = [...new Set(replay.results.map((r) => r.id))];
  const records = await ctx.store.getMany(ids);
  const byId = new Map(records.map((r) => [r.id, r]));
  const missing = ids.filter((id) => !byId.has(id));
  if (missing.length > 0 && ctx.archive) {
    for (const id of missing) {
      const archived = await ctx.archive.get(id);
      if (archived) byId.set(id, archived);
    }
  }
  if (ids.some((id) => !byId.has(id))) {
    throw new DroverError('NOT_FOUND', 'the jobs this Idempotency-Key created are no longer kept (retention removed them)');
  }
  // A token whose queues were narrowed since gets what any other look at those jobs gets.
  if (!canSee(principal, [...byId.values()].map((j) => j.queue))) throw new DroverError('NOT_FOUND', 'no such submission');
  const queued = records.filter((r) => r.status === 'queued');
  if (queued.length > 0) {
    const scores = await ctx.store.redis.zmscore(ctx.store.keys.outbox, ...queued.map((r) => r.id));
    const unpublished = queued.filter((_, i) => scores[i] !== null);
    try {
      await publishQueued(ctx.transport, ctx.store, unpublished.map((r) => ({ id: r.id, queue: r.queue })));
    } catch (err) {
      ctx.log.warn({ err, count: unpublished.length }, 'publishing the jobs of a replayed submission failed; they stay in the outbox');
      throw storedNotPublished();
    }
  }
  return byId;
}

/** The 503 of a keyed submission whose jobs are stored but not yet handed to the broker. */
export function storedNotPublished(): DroverError {
  return new DroverError('UNAVAILABLE', 'the submission is stored but the broker did not take it; it is queued once the broker does; retry with the same Idempotency-Key to get its answer', { stored: true });
}

/** Marks an answer as a replay of an earlier one. */
export function markReplayed(reply: FastifyReply): FastifyReply {
  return reply.header('idempotent-replayed', 'true');
}
