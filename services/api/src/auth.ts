import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { DroverError, parseNamespaceSelection, selectionProblems, type NamespaceSelection } from '@drover/core';

/** `admin` can do everything, `submit` can also read, `read` only reads. */
export type Scope = 'read' | 'submit' | 'admin';
const RANK: Record<Scope, number> = { read: 1, submit: 2, admin: 3 };
const SCOPES = Object.keys(RANK) as Scope[];

export interface Principal {
  name: string;
  scope: Scope;
  /** When set, the token may only submit to and read jobs of these queues. */
  queues?: string[];
  /** When set, the most jobs submitted with this token (by name) that may be unfinished at once (see job-quota.ts). */
  maxUnfinished?: number;
  /** The namespaces the token works in; `*` every one. Unset: `default` only (the token of a tokens file without them). */
  namespaces?: NamespaceSelection;
}

/** The namespaces a principal works in. */
export const namespacesOf = (p: Principal): NamespaceSelection => p.namespaces ?? ['default'];

/** Throws FORBIDDEN when a queue-restricted token reaches for another queue. */
export function assertQueueAllowed(principal: Principal | undefined, queue: string): void {
  if (principal?.queues && !principal.queues.includes(queue)) {
    throw new DroverError('FORBIDDEN', `this token may only use queues ${principal.queues.join(', ')}; not "${queue}"`);
  }
}

const MIN_TOKEN_LENGTH = 16;
/** sha256 of a token, hex: how tokens are kept and looked up, and how the rate limiter names them. */
export const tokenDigest = (token: string): string => createHash('sha256').update(token).digest('hex');

/** The token of an `Authorization: Bearer <token>` header, in any spelling (scheme case, spaces, tabs), or undefined. */
export function parseBearer(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

/**
 * Bearer tokens, kept only as sha256 digests and looked up by digest, so comparing never leaks a prefix
 * through timing and a heap dump does not reveal tokens.
 */
export class TokenRegistry {
  private readonly byDigest = new Map<string, Principal>();

  add(token: string, principal: Principal): void {
    this.byDigest.set(tokenDigest(token), principal);
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** Whose token this is, without any check of what it may do. */
  lookup(token: string): Principal | undefined {
    return this.byDigest.get(tokenDigest(token));
  }

  /** Throws UNAUTHORIZED or FORBIDDEN. */
  authorize(header: string | undefined, needed: Scope): Principal {
    const token = parseBearer(header);
    if (!token) throw new DroverError('UNAUTHORIZED', 'a bearer token is required (Authorization: Bearer <token>)');
    const principal = this.lookup(token);
    if (!principal) throw new DroverError('UNAUTHORIZED', 'unknown token');
    if (RANK[principal.scope] < RANK[needed]) {
      throw new DroverError('FORBIDDEN', `this action needs the "${needed}" scope; the token has "${principal.scope}"`);
    }
    return principal;
  }
}

/** A token's `namespaces`: a list of names, `"*"`, or `["*"]`. */
function namespaceList(v: unknown): NamespaceSelection | { problems: string[] } {
  const items = v === '*' ? ['*'] : v;
  if (!Array.isArray(items) || !items.every((n) => typeof n === 'string')) return { problems: ['must be a list of namespace names or "*"'] };
  return parseNamespaceSelection(items);
}

/**
 * Tokens file: `{"tokens": [{"name": "ci", "token": "<secret>", "scope": "submit", "queues": ["ci"], "maxUnfinished": 500,
 * "namespaces": ["default"]}]}` (queues, maxUnfinished and namespaces optional; namespaces default to `default`). It holds secrets, so it
 * must not be readable by others (mode 0600 or stricter).
 */
export function loadTokens(opts: { adminToken?: string | undefined; tokensFile?: string | undefined }): TokenRegistry {
  const registry = new TokenRegistry();
  const problems: string[] = [];
  if (opts.adminToken !== undefined) {
    if (opts.adminToken.length < MIN_TOKEN_LENGTH) problems.push(`DROVER_ADMIN_TOKEN must be at least ${MIN_TOKEN_LENGTH} characters`);
    // The operator's token: every namespace, those created later included.
    registry.add(opts.adminToken, { name: 'admin', scope: 'admin', namespaces: '*' });
  }
  if (opts.tokensFile !== undefined) {
    try {
      if ((statSync(opts.tokensFile).mode & 0o077) !== 0) problems.push(`${opts.tokensFile} is readable by group or others; chmod 600 it`);
      const parsed = JSON.parse(readFileSync(opts.tokensFile, 'utf8')) as { tokens?: unknown };
      if (!Array.isArray(parsed.tokens)) throw new Error('expected {"tokens": [...]}');
      parsed.tokens.forEach((t: { name?: unknown; token?: unknown; scope?: unknown; queues?: unknown; maxUnfinished?: unknown; namespaces?: unknown }, i) => {
        const namespaces = t.namespaces === undefined ? ['default'] : namespaceList(t.namespaces);
        if (typeof t.token !== 'string' || t.token.length < MIN_TOKEN_LENGTH) {
          problems.push(`${opts.tokensFile}: tokens[${i}].token must be a string of at least ${MIN_TOKEN_LENGTH} characters`);
        } else if (typeof t.scope !== 'string' || !SCOPES.includes(t.scope as Scope)) {
          problems.push(`${opts.tokensFile}: tokens[${i}].scope must be one of ${SCOPES.join(', ')}`);
        } else if (t.queues !== undefined && !(Array.isArray(t.queues) && t.queues.every((q) => typeof q === 'string'))) {
          problems.push(`${opts.tokensFile}: tokens[${i}].queues must be a list of queue names`);
        } else if (t.maxUnfinished !== undefined && !(Number.isSafeInteger(t.maxUnfinished) && (t.maxUnfinished as number) > 0)) {
          problems.push(`${opts.tokensFile}: tokens[${i}].maxUnfinished must be a whole number above 0`);
        } else if (selectionProblems(namespaces)) {
          problems.push(`${opts.tokensFile}: tokens[${i}].namespaces ${selectionProblems(namespaces)!.join('; ')}`);
        } else {
          const principal: Principal = { name: typeof t.name === 'string' ? t.name : `token-${i}`, scope: t.scope as Scope, namespaces: namespaces as NamespaceSelection };
          if (Array.isArray(t.queues)) principal.queues = t.queues;
          if (typeof t.maxUnfinished === 'number') principal.maxUnfinished = t.maxUnfinished;
          registry.add(t.token, principal);
        }
      });
    } catch (err) {
      problems.push(`cannot read DROVER_TOKENS_FILE ${opts.tokensFile}: ${(err as Error).message}`);
    }
  }
  if (registry.size === 0 && problems.length === 0) {
    problems.push('no API token configured: set DROVER_ADMIN_TOKEN or DROVER_TOKENS_FILE (the API never runs open)');
  }
  if (problems.length > 0) throw new DroverError('CONFIG', `Invalid configuration:\n  - ${problems.join('\n  - ')}`, problems);
  return registry;
}
