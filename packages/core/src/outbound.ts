import { promises as dns, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Which addresses Drover's own outbound calls (job callbacks, webhook deliveries) may connect to. By default only
 * public unicast addresses: a URL given by a submitter must not reach loopback services (the API, Redis), the
 * cloud metadata endpoint, or anything else on the private side of the network. `DROVER_OUTBOUND_ALLOW` lists
 * host names and ranges let through anyway (a receiver on the operator's own network, tests on loopback).
 *
 * The check that holds is the one at connect time (`lookup` below): it sees every address the name resolves to
 * just before connecting, so a name that resolved to a public address at submit time and to 127.0.0.1 later
 * (DNS rebinding) is still refused. The submit-time check (`checkUrl`) only turns obvious refusals into a 400.
 */

/**
 * Schema keyword marking a URL Drover will call later (a job's callbackUrl, a webhook's url): the API checks every
 * string so marked in a request body before the route runs (services/api/src/outbound-check.ts).
 */
export const OUTBOUND_URL = 'x-drover-outbound-url';

/** Resolves a host name to every address it has (the `all: true` form of dns.lookup). Tests inject their own. */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (hostname) => dns.lookup(hostname, { all: true });

/** Thrown (or passed to a lookup callback) when policy refuses a target; the message is for operators' logs. */
export class OutboundRefused extends Error {
  readonly code = 'DROVER_OUTBOUND_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'OutboundRefused';
  }
}

export type UrlVerdict = { ok: true } | { ok: false; reason: string; temporary: boolean };

type Range = readonly [network: string, prefix: number, label: string];

/** IPv4 ranges that are not public unicast (RFC 6890 and friends); 240/4 includes the broadcast address. */
const V4_REFUSED: Range[] = [
  ['0.0.0.0', 8, 'this-network'], ['10.0.0.0', 8, 'private'], ['100.64.0.0', 10, 'shared (carrier-grade NAT)'],
  ['127.0.0.0', 8, 'loopback'], ['169.254.0.0', 16, 'link-local'], ['172.16.0.0', 12, 'private'], ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'documentation'], ['192.88.99.0', 24, 'reserved'], ['192.168.0.0', 16, 'private'], ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'], ['203.0.113.0', 24, 'documentation'], ['224.0.0.0', 4, 'multicast'], ['240.0.0.0', 4, 'reserved or broadcast'],
];
/** Named IPv6 ranges; anything outside 2000::/3 (global unicast) is refused too, as "reserved". */
const V6_REFUSED: Range[] = [
  ['::', 128, 'unspecified'], ['::1', 128, 'loopback'], ['::', 96, 'IPv4-compatible'], ['64:ff9b:1::', 48, 'NAT64 local-use'],
  ['100::', 64, 'discard-only'], ['fe80::', 10, 'link-local'], ['fec0::', 10, 'site-local'], ['fc00::', 7, 'private (unique local)'],
  ['ff00::', 8, 'multicast'], ['2001::', 23, 'reserved'], ['2001:db8::', 32, 'documentation'], ['2002::', 16, '6to4'], ['3fff::', 20, 'documentation'],
];

const table = (ranges: Range[], family: 'ipv4' | 'ipv6'): [BlockList, string][] =>
  ranges.map(([net, prefix, label]) => {
    const list = new BlockList();
    list.addSubnet(net, prefix, family);
    return [list, label];
  });
const V4_TABLE = table(V4_REFUSED, 'ipv4');
const V6_TABLE = table(V6_REFUSED, 'ipv6');
const GLOBAL_UNICAST = new BlockList();
GLOBAL_UNICAST.addSubnet('2000::', 3, 'ipv6');

/** The eight 16-bit groups of a valid IPv6 address (a trailing dotted quad becomes the last two). */
function ipv6Groups(address: string): number[] {
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
  const [left, right] = text.split('::') as [string, string | undefined];
  const parse = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const l = parse(left);
  if (right === undefined) return l;
  const r = parse(right);
  return [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
}

const embeddedV4 = (g: number[]): string => `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
const isMapped = (g: number[]): boolean => g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
const isNat64 = (g: number[]): boolean => g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);

/** Why `address` is not public unicast ('loopback', 'private', ...), or null when it is. */
export function nonPublicRange(address: string): string | null {
  const family = isIP(address);
  if (family === 4) return V4_TABLE.find(([list]) => list.check(address, 'ipv4'))?.[1] ?? null;
  if (family !== 6) return 'not an IP address';
  const groups = ipv6Groups(address);
  if (isMapped(groups)) return nonPublicRange(embeddedV4(groups));
  if (isNat64(groups)) {
    const inner = nonPublicRange(embeddedV4(groups));
    return inner ? `NAT64 form of a ${inner}` : null;
  }
  const named = V6_TABLE.find(([list]) => list.check(address, 'ipv6'))?.[1];
  if (named) return named;
  return GLOBAL_UNICAST.check(address, 'ipv6') ? null : 'reserved';
}

// Labels as DNS has them, plus `_` (compose service names); `*.` in front stands for any subdomain.
const HOST_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const bare = (host: string): string => host.replace(/^\[(.*)\]$/, '$1');
const canonicalName = (host: string): string => host.toLowerCase().replace(/\.$/, '');

/** The problems of a `DROVER_OUTBOUND_ALLOW` list (host names, `*.suffix` names, IP addresses, CIDR ranges). */
export function outboundAllowProblems(entries: readonly string[]): string[] {
  return entries.flatMap((e) => (parseEntry(e, new BlockList(), new Set(), []) ? [] : [`DROVER_OUTBOUND_ALLOW: "${e}" is not a host name, an IP address or a CIDR range`]));
}

function parseEntry(entry: string, ranges: BlockList, names: Set<string>, suffixes: string[]): boolean {
  const [addr, prefixText, extra] = bare(entry.trim()).split('/');
  if (addr === undefined || extra !== undefined) return false;
  const family = isIP(addr);
  if (family !== 0) {
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefixText === undefined) ranges.addAddress(addr, type);
    else {
      if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > (family === 4 ? 32 : 128)) return false;
      ranges.addSubnet(addr, Number(prefixText), type);
    }
    return true;
  }
  const name = canonicalName(addr);
  if (prefixText !== undefined || !HOST_NAME.test(name)) return false;
  if (name.startsWith('*.')) suffixes.push(name.slice(1));
  else names.add(name);
  return true;
}

/** How long a submit-time lookup may take before the submission is answered 503. */
const SUBMIT_LOOKUP_TIMEOUT_MS = 5000;
const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

export class OutboundPolicy {
  private readonly ranges = new BlockList();
  private readonly names = new Set<string>();
  private readonly suffixes: string[] = [];

  /** `allow`: the DROVER_OUTBOUND_ALLOW entries (already validated by loadConfig; invalid ones are ignored). */
  constructor(allow: readonly string[] = [], private readonly resolver: Resolver = systemResolver) {
    for (const entry of allow) parseEntry(entry, this.ranges, this.names, this.suffixes);
  }

  /** Null when Drover may connect to `address`, else why not (for messages and logs). */
  refusal(address: string): string | null {
    const ip = bare(address);
    const family = isIP(ip);
    if (family === 0) return `${ip} is not an IP address`;
    if (this.ranges.check(ip, family === 4 ? 'ipv4' : 'ipv6')) return null;
    const groups = family === 6 ? ipv6Groups(ip) : undefined;
    // 127.0.0.1 listed also lets ::ffff:127.0.0.1 through: the same address.
    if (groups && isMapped(groups) && this.ranges.check(embeddedV4(groups), 'ipv4')) return null;
    const range = nonPublicRange(ip);
    return range ? `${ip} is a ${range} address` : null;
  }

  /** A host name listed in DROVER_OUTBOUND_ALLOW: whatever it resolves to is let through. */
  listed(hostname: string): boolean {
    const name = canonicalName(bare(hostname));
    return this.names.has(name) || this.suffixes.some((s) => name.endsWith(s));
  }

  /** Every address of `hostname`, or OutboundRefused when any of them is refused (one bad answer spoils the name). */
  async resolve(hostname: string): Promise<LookupAddress[]> {
    const addresses = await this.resolver(hostname);
    if (addresses.length === 0) throw Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' });
    if (this.listed(hostname)) return addresses;
    for (const a of addresses) {
      const why = this.refusal(a.address);
      if (why) throw new OutboundRefused(`${hostname} resolves to an address Drover may not call (${why})`);
    }
    return addresses;
  }

  /**
   * A `lookup` for http(s) agents: resolves through the policy, so nothing is connected to that policy refuses.
   * Node calls it for host names only; `assertTarget` covers literal addresses.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.resolve(hostname).then(
      (found) => {
        const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
        const usable = family ? found.filter((a) => a.family === family) : found;
        const first = usable[0];
        if (!first) callback(Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: 'ENOTFOUND' }), '');
        else if (options.all) callback(null, usable);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };

  /** Scheme, credentials and literal addresses of a URL about to be called; throws OutboundRefused. */
  assertTarget(url: URL): void {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OutboundRefused(`scheme ${url.protocol} is not http or https`);
    if (url.username || url.password) throw new OutboundRefused('the URL carries credentials');
    const host = bare(url.hostname);
    if (isIP(host) === 0) return;
    const why = this.refusal(host);
    if (why) throw new OutboundRefused(why);
  }

  /**
   * The submit-time check of a URL Drover will call later: syntax, then the addresses its host has right now.
   * `lookups` shares resolutions between the URLs of one request (one lookup per host).
   */
  async checkUrl(raw: string, lookups = new Map<string, Promise<LookupAddress[]>>()): Promise<UrlVerdict> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return { ok: false, reason: 'is not a valid URL', temporary: false };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: 'must be an http or https URL', temporary: false };
    if (url.username || url.password) return { ok: false, reason: 'must not carry credentials (user:password@)', temporary: false };
    const host = bare(url.hostname);
    const outside = 'Drover only calls public addresses; DROVER_OUTBOUND_ALLOW lists exceptions';
    if (isIP(host) !== 0) {
      const why = this.refusal(host);
      return why ? { ok: false, reason: `${why}; ${outside}`, temporary: false } : { ok: true };
    }
    if (this.listed(host)) return { ok: true };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' })), SUBMIT_LOOKUP_TIMEOUT_MS);
    });
    try {
      let lookup = lookups.get(host);
      if (!lookup) lookups.set(host, (lookup = this.resolve(host)));
      await Promise.race([lookup, timeout]);
      return { ok: true };
    } catch (err) {
      if (err instanceof OutboundRefused) return { ok: false, reason: `host ${err.message}; ${outside}`, temporary: false };
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (NOT_FOUND.has(code)) return { ok: false, reason: `host ${host} does not resolve`, temporary: false };
      return { ok: false, reason: `host ${host} could not be resolved now (${code || 'lookup failed'}); retry later`, temporary: true };
    } finally {
      clearTimeout(timer);
    }
  }
}
