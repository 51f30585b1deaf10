import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { parseRedisTarget } from './redis-target.js';

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

/**
 * A client for REDIS_URL (redis-target.ts): one Redis, a Redis Cluster or a Sentinel-watched primary. A Cluster is
 * typed as a Redis: it has the same commands, and Drover uses only what works on a cluster when every key shares a
 * hash tag (scripts with KEYS[1] the tag, MULTI and pipelines within it, pub/sub, blocking reads).
 */
export function createRedis(url: string, role: RedisRole, connectionName?: string): Redis {
  const options: RedisOptions = { ...redisOptions(role), ...(connectionName ? { connectionName } : {}) };
  const target = parseRedisTarget(url);
  if (target instanceof Error) throw target;
  if (target.kind === 'single') return new Redis(url, options);
  const auth = { ...(target.username ? { username: target.username } : {}), ...(target.password ? { password: target.password } : {}) };
  const tls = target.tls ? { tls: {} } : {};
  if (target.kind === 'sentinel') {
    return new Redis({
      ...options, ...auth, ...tls, sentinels: target.sentinels, name: target.name, db: target.db,
      // The sentinels take the same credentials (ACL users on both); TLS to them too when the URL says rediss.
      ...(target.password ? { sentinelPassword: target.password } : {}), ...(target.username ? { sentinelUsername: target.username } : {}),
      ...(target.tls ? { enableTLSForSentinelMode: true } : {}),
    });
  }
  const { enableOfflineQueue, enableAutoPipelining, retryStrategy, lazyConnect, ...perNode } = options;
  const cluster = new Cluster(target.nodes, {
    redisOptions: { ...perNode, ...auth, ...tls },
    ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    ...(enableAutoPipelining !== undefined ? { enableAutoPipelining } : {}),
    clusterRetryStrategy: retryStrategy ?? null,
    lazyConnect: lazyConnect ?? true,
    // A failover moves slots: retry commands after MOVED/CLUSTERDOWN for a while instead of failing them.
    retryDelayOnClusterDown: 200,
    retryDelayOnFailover: 200,
    // Right after a promotion nodes disagree for a moment about who holds a slot: space the MOVED retries out.
    retryDelayOnMoved: 100,
    maxRedirections: 32,
  });
  return cluster as unknown as Redis;
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
