import type { Keys } from './keys.js';

/**
 * Idempotency-Key bindings: what one keyed submission created, written by the same script that creates the jobs, so a
 * client that lost the answer (a 503, a reset connection) and retries finds them and never creates them twice.
 *
 * A binding lives at `{prefix}:idem:<digest>` (the digest covers the caller's identity and its key, so two tokens'
 * keys never meet) and holds `{fp, ref, r}`: the fingerprint of the request (route and canonical body), the resource
 * the request is answered with (a workflow id, or ''), and the create results as flat (status, id) pairs. It expires
 * with its TTL (DROVER_IDEMPOTENCY_TTL_MS).
 */

/** What a keyed submission hands the store: where its binding lives and what the request was. */
export interface IdempotencyClaim {
  /** Hex digest of the caller's identity and its Idempotency-Key. */
  digest: string;
  /** Hex digest of the route and the canonical request body. */
  fingerprint: string;
  /** How long the binding is kept, ms. */
  ttlMs: number;
}

/** A create result as the script reports it: the job's status after the create ('duplicate' for a dedupe hit), its id. */
export interface CreateResult {
  status: string;
  id: string;
}

/** A keyed request seen before: what it created then. */
export interface Replay {
  /** The resource the first answer was about beyond its jobs (a workflow id), or ''. */
  ref: string;
  results: CreateResult[];
}


/** The script's view of a claim (short field names: it travels with every keyed create). */
export function claimArg(claim: IdempotencyClaim): { d: string; fp: string; ttl: number } {
  return { d: claim.digest, fp: claim.fingerprint, ttl: claim.ttlMs };
}

/** Reads a script answer that starts with 'replay' or 'reused'; null for a plain create answer. */
export function replayOf(out: string[]): Replay | 'reused' | null {
  if (out[0] === 'reused') return 'reused';
  if (out[0] !== 'replay') return null;
  const results: CreateResult[] = [];
  for (let i = 2; i + 1 < out.length; i += 2) results.push({ status: out[i]!, id: out[i + 1]! });
  return { ref: out[1] ?? '', results };
}

/** The binding of a claim as it stands, read without the script: replay, 'reused', or null (a new key). */
export async function readBinding(redis: { get(key: string): Promise<string | null> }, keys: Keys, claim: IdempotencyClaim): Promise<Replay | 'reused' | null> {
  const raw = await redis.get(keys.idempotency(claim.digest));
  if (raw === null) return null;
  const b = JSON.parse(raw) as { fp: string; ref?: string; r: string[] };
  if (b.fp !== claim.fingerprint) return 'reused';
  return replayOf(['replay', b.ref ?? '', ...b.r]);
}
