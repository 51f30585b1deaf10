/**
 * What `REDIS_URL` names: one Redis (`redis://`, `rediss://` with TLS), a Redis Cluster
 * (`redis+cluster://[user:password@]host1:port1,host2:port2,...`, `rediss+cluster://` with TLS: any reachable nodes,
 * the client finds the rest), or a primary found through Redis Sentinel
 * (`redis+sentinel://[user:password@]sentinel1:26379,sentinel2:26379/<primary name>[/<db>]`).
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; username?: string; password?: string; tls: boolean }
  | { kind: 'sentinel'; sentinels: { host: string; port: number }[]; name: string; db: number; username?: string; password?: string; tls: boolean };

const MULTI = /^(rediss?)\+(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?$/;

/** Parses REDIS_URL; a string that is none of the forms above is an Error saying what is wrong. */
export function parseRedisTarget(url: string): RedisTarget | Error {
  if (/^rediss?:\/\//.test(url)) return { kind: 'single', url };
  const m = MULTI.exec(url);
  if (!m) return new Error('REDIS_URL must be redis://, rediss://, redis+cluster://host:port,... or redis+sentinel://host:port,.../name');
  const [, scheme, kind, auth, hostList, path] = m;
  const nodes: { host: string; port: number }[] = [];
  for (const entry of hostList!.split(',')) {
    const hm = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = Number(hm?.[2] ?? (kind === 'sentinel' ? 26379 : 6379));
    if (!hm || port < 1 || port > 65535) return new Error(`REDIS_URL: "${entry}" is not host:port`);
    nodes.push({ host: hm[1]!.replace(/^\[|\]$/g, ''), port });
  }
  const credentials: { username?: string; password?: string } = {};
  if (auth) {
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon < 0 ? '' : auth.slice(0, colon));
    const password = decodeURIComponent(colon < 0 ? auth : auth.slice(colon + 1));
    if (user) credentials.username = user;
    if (password) credentials.password = password;
  }
  const tls = scheme === 'rediss';
  if (kind === 'cluster') {
    if (path && path !== '/') return new Error('REDIS_URL: a cluster has no database number (redis+cluster://host:port,... with nothing after the hosts)');
    return { kind: 'cluster', nodes, tls, ...credentials };
  }
  const parts = (path ?? '').split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.length > 2) return new Error('REDIS_URL: redis+sentinel://host:port,.../<primary name>[/<db>] needs the name the sentinels know the primary by');
  const db = parts[1] === undefined ? 0 : Number(parts[1]);
  if (!Number.isInteger(db) || db < 0) return new Error(`REDIS_URL: "${parts[1]}" is not a database number`);
  return { kind: 'sentinel', sentinels: nodes, name: decodeURIComponent(parts[0]!), db, tls, ...credentials };
}

/** The URL with its password replaced, for logs and errors. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^@/:]*):[^@/]*@/, '//$1:***@');
}
