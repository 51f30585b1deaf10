import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { DroverError } from './errors.js';
import { firstTimeInProcess, warnOnce } from './logger.js';

/**
 * Redis settings the shipped setups (drover start, compose, Kubernetes) run with besides durability. A job record
 * is a hash of about 25 fields, two of them (the spec, the resource usage) usually longer than Redis' default
 * hash-max-listpack-value of 64 bytes, which turns the whole hash into a hashtable: about 1.6 KB per finished job
 * instead of about 0.7 KB as a listpack. Reads and writes of a 25-field listpack cost no more. A Redis without it
 * works the same, with more memory per job.
 */
export const REDIS_TUNING: Readonly<Record<string, string>> = { 'hash-max-listpack-value': '256' };

/** REDIS_TUNING as redis-server arguments. */
export const redisTuningArgs = (): string[] => Object.entries(REDIS_TUNING).flatMap(([k, v]) => [`--${k}`, v]);

/** Oldest Redis Drover runs on: the runners' lease renewal is a script flagged allow-oom (Redis 7 script flags). */
const MIN_REDIS_MAJOR = 7;

/**
 * Warns loudly when the Redis we reach could lose accepted jobs: an eviction policy other than noeviction
 * (Redis would silently delete job records and queue keys under memory pressure) or no AOF. Managed Redis
 * services often refuse CONFIG: then INFO is used, and if that hides it too we say we could not tell.
 * Throws CONFIG for a Redis older than 7, which Drover cannot run on correctly.
 */
export async function checkRedisDurability(redis: Redis, log: Logger): Promise<{ evicts: boolean | null; aof: boolean | null }> {
  let policy: string | undefined;
  let aof: string | undefined;
  let version: string | undefined;
  try {
    const info = await redis.info();
    policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    aof = /aof_enabled:(\d)/.exec(info)?.[1];
    version = /redis_version:(\S+)/.exec(info)?.[1];
  } catch {
    // fall through to "unknown"
  }
  // An older Redis would refuse the flagged lease renewal: every running job would be taken for lost and run again.
  if (version !== undefined && Number(version.split('.')[0]) < MIN_REDIS_MAJOR) {
    throw new DroverError('CONFIG', `Redis ${version} is too old: Drover needs Redis ${MIN_REDIS_MAJOR} or later`);
  }
  const evicts = policy === undefined ? null : policy !== 'noeviction';
  const hasAof = aof === undefined ? null : aof === '1';
  // Said once per process: the three services of `drover start` each check the same Redis.
  if (evicts) {
    if (firstTimeInProcess('redis-evicts')) {
      log.error(
        { maxmemoryPolicy: policy },
        `REDIS MAY EVICT KEYS (maxmemory-policy ${policy}): accepted jobs can be silently lost under memory pressure. Set maxmemory-policy noeviction.`,
      );
    }
  } else if (evicts === null) {
    warnOnce(log, 'redis-policy-unknown', {}, 'could not read the Redis maxmemory-policy; make sure it is noeviction');
  }
  if (hasAof === false) warnOnce(log, 'redis-no-aof', {}, 'Redis runs without AOF: jobs accepted in the last moments before a Redis crash can be lost. Set appendonly yes, appendfsync everysec.');
  return { evicts, aof: hasAof };
}
