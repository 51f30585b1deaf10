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

/** Registers Lua scripts as commands on a client, once per client (ioredis keeps them across reconnects). */
export function defineScripts(client: Redis, scripts: Record<string, string>): void {
  for (const [name, lua] of Object.entries(scripts)) {
    if (!(name in client)) client.defineCommand(name, { numberOfKeys: 0, lua });
  }
}
