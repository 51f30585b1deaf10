import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_NAMESPACE, namespaceProblem, selectionHas, type NamespaceStore } from '@drover/core';
import { namespacesOf, parseBearer, type Principal, type TokenRegistry } from './auth.js';

/** The header a request names its namespace with (or `?namespace=`). */
export const NAMESPACE_HEADER = 'drover-namespace';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Which namespace a request asked for by name (header or query), if it named one; a string: the problem. */
export function namedNamespace(headers: IncomingMessage['headers'], url: string): { name?: string } | string {
  const header = headers[NAMESPACE_HEADER];
  const q = url.indexOf('?');
  const query = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('namespace');
  const fromHeader = Array.isArray(header) ? header[0] : header;
  if (fromHeader !== undefined && query !== null && fromHeader !== query) return `the ${NAMESPACE_HEADER} header says "${fromHeader}" and ?namespace= "${query}"`;
  const name = fromHeader ?? query ?? undefined;
  if (name === undefined) return {};
  const problem = namespaceProblem(name);
  return problem ?? { name };
}

/** The token of a request: its Authorization header, or `?token=` (the legacy clients' way). */
export function requestToken(req: IncomingMessage): string | undefined {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return parseBearer(req.headers.authorization) ?? (q < 0 ? undefined : new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined);
}

/**
 * The namespace a request is for: the one it names, else its token's only namespace, else `default`. `problem`:
 * the name it gave is no namespace name (a 400).
 */
export function requestNamespace(req: IncomingMessage, principal: Principal | undefined): string | { problem: string } {
  const named = namedNamespace(req.headers, req.url ?? '/');
  if (typeof named === 'string') return { problem: named };
  if (named.name !== undefined) return named.name;
  const theirs = principal ? namespacesOf(principal) : '*';
  return theirs !== '*' && theirs.length === 1 ? theirs[0]! : DEFAULT_NAMESPACE;
}

export interface NamespaceRouterOptions {
  tokens: TokenRegistry;
  registry: NamespaceStore;
  /** The Fastify handler of a namespace's app, built on first use. */
  handlerFor: (ns: string) => Promise<Handler>;
  onError: (err: unknown, ns: string) => void;
}

/** How long "no such namespace" is believed before the registry is asked again (namespaces are never deleted). */
const MISSING_TTL_MS = 1000;

/**
 * The API's front door: one HTTP server, one Fastify app per namespace. A request for the default namespace goes
 * to the default app as before namespaces existed. A request for another goes to that namespace's app when its
 * token may work there and the namespace exists; else 404 with the same answer either way, so a token learns
 * nothing of namespaces it cannot use. A request whose token is not seen here goes to the namespace's app if the
 * namespace exists, else to the default app: both answer 401 to no token, and check a legacy body token.
 */
export function namespaceRouter(opts: NamespaceRouterOptions, defaultHandler: Handler): Handler {
  const known = new Set<string>([DEFAULT_NAMESPACE]);
  const missing = new Map<string, number>();
  const exists = async (ns: string): Promise<boolean> => {
    if (known.has(ns)) return true;
    const at = missing.get(ns);
    if (at !== undefined && Date.now() - at < MISSING_TTL_MS) return false;
    if (await opts.registry.get(ns)) {
      known.add(ns);
      missing.delete(ns);
      return true;
    }
    missing.set(ns, Date.now());
    return false;
  };
  return (req, res) => {
    const moved = unprefixPath(req);
    if (moved) return answer(res, 400, 'VALIDATION', moved);
    const token = requestToken(req);
    const principal = token ? opts.tokens.lookup(token) : undefined;
    const ns = requestNamespace(req, principal);
    if (typeof ns !== 'string') return answer(res, 400, 'VALIDATION', ns.problem);
    if (ns === DEFAULT_NAMESPACE) return defaultHandler(req, res);
    if (principal && !selectionHas(namespacesOf(principal), ns)) return answer(res, 404, 'NOT_FOUND', noSuch(ns));
    exists(ns)
      .then(async (ok) => {
        // Without a token seen here (none, unknown, or in a legacy body) the namespace's app answers if it exists
        // and the default app if not: 401 alike, and a body token is checked against the namespace there.
        if (!ok && !principal) return defaultHandler(req, res);
        if (!ok) return answer(res, 404, 'NOT_FOUND', noSuch(ns));
        (await opts.handlerFor(ns))(req, res);
      })
      .catch((err: unknown) => {
        opts.onError(err, ns);
        if (!res.headersSent) answer(res, 503, 'UNAVAILABLE', `namespace "${ns}" cannot be served right now; retry`);
      });
  };
}

/** `/ns/<name>/...`: the path form, for legacy clients that can only be given a base URL. */
const NS_PATH = /^\/ns\/([^/?]*)(\/[^?]*)?(\?.*)?$/;

/**
 * Moves a `/ns/<name>` path prefix into the namespace header, so everything after sees one way of naming it;
 * answers the problem when the path and the header disagree.
 */
function unprefixPath(req: IncomingMessage): string | undefined {
  const m = NS_PATH.exec(req.url ?? '');
  if (!m) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(m[1]!);
  } catch {
    return 'the namespace in the path is not a name';
  }
  const header = req.headers[NAMESPACE_HEADER];
  if (header !== undefined && header !== name) return `the path names namespace "${name}" and the ${NAMESPACE_HEADER} header "${String(header)}"`;
  req.headers[NAMESPACE_HEADER] = name;
  req.url = `${m[2] ?? '/'}${m[3] ?? ''}`;
  return undefined;
}

export const noSuch = (ns: string): string => `no namespace "${ns}" (or this token may not use it)`;

function answer(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
}
