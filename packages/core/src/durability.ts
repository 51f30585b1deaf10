import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Warns loudly when the Redis we reach could lose accepted jobs: an eviction policy other than noeviction
 * (Redis would silently delete job records and queue keys under memory pressure) or no AOF. Managed Redis
 * services often refuse CONFIG: then INFO is used, and if that hides it too we say we could not tell.
 */
export async function checkRedisDurability(redis: Redis, log: Logger): Promise<{ evicts: boolean | null; aof: boolean | null }> {
  let policy: string | undefined;
  let aof: string | undefined;
  try {
    const info = await redis.info();
    policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    aof = /aof_enabled:(\d)/.exec(info)?.[1];
  } catch {
    // fall through to "unknown"
  }
  const evicts = policy === undefined ? null : policy !== 'noeviction';
  const hasAof = aof === undefined ? null : aof === '1';
  if (evicts) {
    log.error(
      { maxmemoryPolicy: policy },
      `REDIS MAY EVICT KEYS (maxmemory-policy ${policy}): accepted jobs can be silently lost under memory pressure. Set maxmemory-policy noeviction.`,
    );
  } else if (evicts === null) {
    log.warn('could not read the Redis maxmemory-policy; make sure it is noeviction');
  }
  if (hasAof === false) log.warn('Redis runs without AOF: jobs accepted in the last moments before a Redis crash can be lost. Set appendonly yes, appendfsync everysec.');
  return { evicts, aof: hasAof };
}
