import { Redis, type RedisOptions } from 'ioredis';

/**
 * `producer` connections fail fast (the API answers 503 instead of queueing commands while Redis is away);
 * `worker` connections retry forever, because a runner must eventually record the result it holds.
 */
export type RedisRole = 'producer' | 'worker' | 'subscriber';

export function redisOptions(role: RedisRole): RedisOptions {
  const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000);
  if (role === 'producer') {
    // No auto-pipelining here: with the offline queue off, an auto-pipeline caught by a disconnect kept failing
    // with "Stream isn't writeable" after Redis came back (seen in the Redis restart fault test).
    return { enableOfflineQueue: false, maxRetriesPerRequest: 1, enableAutoPipelining: false, retryStrategy, lazyConnect: true };
  }
  return { maxRetriesPerRequest: null, enableAutoPipelining: role === 'worker', retryStrategy, lazyConnect: true };
}

export function createRedis(url: string, role: RedisRole, connectionName?: string): Redis {
  return new Redis(url, { ...redisOptions(role), ...(connectionName ? { connectionName } : {}) });
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function connectRedis(client: Redis, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return;
  const timer = new Promise<never>((_, reject) => {
    const t = setTimeout(() => reject(new Error(`Redis not reachable within ${timeoutMs} ms`)), timeoutMs);
    t.unref();
  });
  const connecting = client.status === 'wait' ? client.connect() : new Promise<void>((resolve) => client.once('ready', resolve));
  await Promise.race([connecting, timer]);
}

/**
 * Registers Lua scripts as commands on a client, once per client (ioredis keeps them across reconnects). The first
 * `numberOfKeys` arguments of a call are its KEYS: for the store's scripts one, the deployment's hash tag, which a
 * cluster client routes by (every key the script touches carries that tag, so lives in that slot).
 */
export function defineScripts(client: Redis, scripts: Record<string, string>, numberOfKeys = 1): void {
  for (const [name, lua] of Object.entries(scripts)) {
    if (!(name in client)) client.defineCommand(name, { numberOfKeys, lua });
  }
}

/**
 * Redis refused a write because it reached `maxmemory` under `noeviction` (`OOM command not allowed ...`), also when
 * the refusal came inside a script or a MULTI. Such a refusal applied nothing: Redis checks before a command runs,
 * refuses a MULTI whole (EXECABORT), and refuses an unflagged script only at its first write (a flagged one before
 * it starts), so before it changed anything.
 *
 * What Redis 7 refuses at maxmemory goes by the command's `denyoom` flag, not by whether memory would grow (tried on
 * 7.0): refused are SET, HSET (an existing field too), ZADD (with XX too), XADD, INCR, HINCRBY, ZINCRBY; allowed are
 * reads, DEL, ZREM, SREM, HDEL, EXPIRE, PEXPIRE, PERSIST, PUBLISH. An unflagged script whose first write is an
 * allowed one (a ZREM) runs whole, its later writes included; a script flagged `allow-oom` always runs.
 */
export function isStoreFull(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (/\bOOM command not allowed\b/.test(err.message)) return true;
  const previous = (err as { previousErrors?: unknown }).previousErrors;
  return Array.isArray(previous) && previous.some(isStoreFull);
}
