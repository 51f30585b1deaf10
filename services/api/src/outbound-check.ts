import { DroverError, OUTBOUND_URL, type OutboundPolicy, type UrlVerdict } from '@drover/core';
import type { LookupAddress } from 'node:dns';
import type { FastifyInstance } from 'fastify';

/** Distinct hosts one request may name in its URLs: each costs a DNS lookup now. */
export const MAX_OUTBOUND_HOSTS_PER_REQUEST = 32;

type Schema = Record<string, unknown>;
const markedCache = new WeakMap<object, boolean>();
const patternCache = new Map<string, RegExp>();

/** Whether the schema, anywhere inside, marks a string as a URL Drover will call (see OUTBOUND_URL). */
function marks(schema: unknown): boolean {
  if (!schema || typeof schema !== 'object') return false;
  const cached = markedCache.get(schema);
  if (cached !== undefined) return cached;
  const s = schema as Schema;
  markedCache.set(schema, false);
  const children = [
    ...['anyOf', 'oneOf', 'allOf'].flatMap((k) => (Array.isArray(s[k]) ? (s[k] as unknown[]) : [])),
    ...Object.values((s.properties ?? {}) as Schema),
    ...Object.values((s.patternProperties ?? {}) as Schema),
    s.items,
    s.additionalProperties,
  ];
  const result = s[OUTBOUND_URL] === true || children.some(marks);
  markedCache.set(schema, result);
  return result;
}

const at = (path: string, key: string | number): string => (path ? `${path}/${key}` : String(key));

function walk(schema: unknown, value: unknown, path: string, out: Map<string, string>): void {
  if (!marks(schema)) return;
  const s = schema as Schema;
  if (s[OUTBOUND_URL] === true && typeof value === 'string') {
    out.set(path, value);
    return;
  }
  for (const k of ['anyOf', 'oneOf', 'allOf']) if (Array.isArray(s[k])) for (const sub of s[k] as unknown[]) walk(sub, value, path, out);
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(s.items, v, at(path, i), out));
    return;
  }
  if (!value || typeof value !== 'object') return;
  const props = (s.properties ?? {}) as Schema;
  const patterns = Object.entries((s.patternProperties ?? {}) as Schema);
  for (const [key, v] of Object.entries(value)) {
    if (Object.hasOwn(props, key)) {
      walk(props[key], v, at(path, key), out);
      continue;
    }
    for (const [pattern, sub] of patterns) {
      let re = patternCache.get(pattern);
      if (!re) patternCache.set(pattern, (re = new RegExp(pattern, 'u')));
      if (re.test(key)) walk(sub, v, at(path, key), out);
    }
    if (s.additionalProperties && typeof s.additionalProperties === 'object') walk(s.additionalProperties, v, at(path, key), out);
  }
}

/** The strings of `body` that `schema` marks as outbound URLs, by field path (`jobs/3/callbackUrl`). */
export function outboundUrls(schema: unknown, body: unknown): { field: string; url: string }[] {
  const out = new Map<string, string>();
  walk(schema, body, '', out);
  return [...out].map(([field, url]) => ({ field, url }));
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
};

/**
 * The submit-time side of the outbound policy, for every route at once: after a body passed its schema and before
 * the route runs (so nothing is stored), each URL the schema marks (a job's callbackUrl, in a job, a batch, a
 * schedule, a workflow step; a webhook's url) must be http(s) without credentials and resolve, now, to addresses
 * Drover may call. A refusal is a 400 VALIDATION naming the field; a lookup that failed for now a 503. The guard
 * that holds against DNS tricks is the scheduler's, at connect time: this one gives the submitter an early answer.
 */
export function registerOutboundCheck(app: FastifyInstance, policy: OutboundPolicy): void {
  app.addHook('preHandler', async (request) => {
    const schema = request.routeOptions.schema?.body;
    if (!marks(schema)) return;
    const targets = outboundUrls(schema, request.body);
    if (targets.length === 0) return;
    const hosts = new Set(targets.map((t) => hostOf(t.url)));
    if (hosts.size > MAX_OUTBOUND_HOSTS_PER_REQUEST) {
      throw new DroverError('VALIDATION', `the URLs of one request may name at most ${MAX_OUTBOUND_HOSTS_PER_REQUEST} hosts; this one names ${hosts.size}`);
    }
    const lookups = new Map<string, Promise<LookupAddress[]>>();
    const verdicts = await Promise.all(targets.map(async (t): Promise<[typeof t, UrlVerdict]> => [t, await policy.checkUrl(t.url, lookups)]));
    // Named like schema errors (`body/jobs/3/callbackUrl`): this is the rest of the body's validation.
    const refused = verdicts.flatMap(([t, v]) => (v.ok ? [] : [{ field: `body/${t.field}`, message: v.reason, temporary: v.temporary }]));
    if (refused.length === 0) return;
    const permanent = refused.filter((r) => !r.temporary);
    const shown = (permanent.length > 0 ? permanent : refused).map(({ field, message }) => ({ field, message }));
    const text = shown.map((d) => `${d.field}: ${d.message}`).join('; ');
    throw permanent.length > 0 ? new DroverError('VALIDATION', text, shown) : new DroverError('UNAVAILABLE', text, shown);
  });
}
