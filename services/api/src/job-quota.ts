import { DroverError, isTerminal, type JobStore, type JobStatus } from '@drover/core';
import type { Principal } from './auth.js';

/** Members read back per round trip when pruning a token's set. */
const PRUNE_PAGE = 1000;

const ownedKey = (store: JobStore, principal: Principal): string => store.keys.name('owned', principal.name);

/**
 * A token's cap of unfinished jobs (`maxUnfinished` in the tokens file). The jobs a capped token submitted are kept
 * in a sorted set; under the cap one ZCARD answers. Only at the cap are the members' statuses read and the ended
 * (or expired) ones dropped, so the cost falls on the token that is at its limit. The check runs before the create,
 * not inside the store's script: requests of one token that race each other can overshoot the cap by at most what
 * they submit together. Schedule fires are not counted (they are the schedule's, not the token's).
 */
export async function assertUnderQuota(store: JobStore, principal: Principal | undefined, adding: number): Promise<void> {
  const max = principal?.maxUnfinished;
  if (max === undefined || principal === undefined) return;
  const key = ownedKey(store, principal);
  if ((await store.redis.zcard(key)) + adding <= max) return;
  const unfinished = await prune(store, key);
  if (unfinished + adding > max) {
    throw new DroverError(
      'QUOTA',
      `this token has ${unfinished} unfinished jobs and may have at most ${max} (maxUnfinished); ${adding} more would pass it: submit again once some ended`,
      { unfinished, adding, limit: max },
    );
  }
}

/** Remembers the jobs a capped token just created. */
export async function recordOwned(store: JobStore, principal: Principal | undefined, ids: string[]): Promise<void> {
  if (principal?.maxUnfinished === undefined || ids.length === 0) return;
  const now = Date.now();
  await store.redis.zadd(ownedKey(store, principal), ...ids.flatMap((id) => [now, id]));
}

/** Drops ended and vanished jobs from a token's set; returns how many are left (the unfinished ones). */
async function prune(store: JobStore, key: string): Promise<number> {
  let left = 0;
  for (let offset = 0; ; offset += PRUNE_PAGE) {
    const ids = await store.redis.zrange(key, offset, offset + PRUNE_PAGE - 1);
    if (ids.length === 0) break;
    const pipe = store.redis.pipeline();
    for (const id of ids) pipe.hget(store.keys.job(id), 'status');
    const rows = (await pipe.exec()) ?? [];
    for (const [err] of rows) if (err) throw err;
    const ended = ids.filter((_, i) => {
      const status = rows[i]?.[1] as JobStatus | null | undefined;
      return !status || isTerminal(status);
    });
    if (ended.length > 0) await store.redis.zrem(key, ...ended);
    left += ids.length - ended.length;
    // Removed members shift the rest down: continue from where the kept ones end.
    offset -= ended.length;
    if (ids.length < PRUNE_PAGE) break;
  }
  return left;
}
