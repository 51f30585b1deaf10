import { isIP } from 'node:net';
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { Type, type Static } from 'typebox';

/**
 * Placement: which runners may run a job. Runners carry labels (RUNNER_LABELS, plus `host` and `address` of their
 * own); a job's `constraints` name hosts and labels, and only a runner that satisfies them claims it. The check runs
 * in the store's claim script (store/lua/lib/placement.lua, the same rules as `satisfies`), so no path can start a job
 * elsewhere; how a declined job reaches a runner that satisfies it is in docs/design-notes.md.
 */

/** Most entries of `constraints.host`. */
export const MAX_HOST_CONSTRAINTS = 64;
/** Most labels a constraint or a runner may name. */
export const MAX_PLACEMENT_LABELS = 32;
/** As job labels' keys. */
const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$';
/** A host name, an IPv4 or IPv6 address, or a runner id (RUNNER_ID). */
const HOST_ENTRY_PATTERN = '^[A-Za-z0-9:][A-Za-z0-9_.:-]{0,252}$';
/** Labels set by the runner itself: its host name and its addresses. */
export const AUTOMATIC_LABELS = ['host', 'address'] as const;
/** What RUNNER_LABELS values may hold (they are comma separated, so no comma; no spaces). */
const LABEL_VALUE = /^[A-Za-z0-9_.:/@+-]{1,256}$/;

export const Constraints = Type.Object(
  {
    host: Type.Optional(
      Type.Array(Type.String({ pattern: HOST_ENTRY_PATTERN }), {
        minItems: 1,
        maxItems: MAX_HOST_CONSTRAINTS,
        description: 'Runs only on a runner whose host name (any case), one of whose addresses, or whose id is one of these. No ports.',
      }),
    ),
    notHost: Type.Optional(
      Type.Array(Type.String({ pattern: HOST_ENTRY_PATTERN }), {
        minItems: 1,
        maxItems: MAX_HOST_CONSTRAINTS,
        description: 'Never runs on a runner whose host name (any case), one of whose addresses, or whose id is one of these (a machine taken offline for this job). No ports.',
      }),
    ),
    labels: Type.Optional(
      Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ minLength: 1, maxLength: 256 }), {
        maxProperties: MAX_PLACEMENT_LABELS,
        additionalProperties: false,
        description: 'Runs only on a runner whose labels (RUNNER_LABELS, plus `host` and `address`, which matches any of its addresses) hold all of these.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Where the job may run. A runner that does not satisfy them never claims it; it waits until a live one that does takes it.',
  },
);

export type JobConstraints = Static<typeof Constraints>;

/** What a runner is, for placement: the registry shows it, the claim script checks it. */
export interface RunnerPlacement {
  id: string;
  /** Host name, lower case. */
  host: string;
  /** Its addresses, IPv4 first, IPv6 in canonical form. */
  addresses: string[];
  /** RUNNER_LABELS plus `host` and `address` (its first address). */
  labels: Record<string, string>;
}

/** An IP address in the one form placement compares (IPv6 compressed, lower case); anything else unchanged. */
export function canonicalAddress(text: string): string {
  if (isIP(text) !== 6) return text;
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** Problems a schema cannot say (an entry with a port). Fields are relative to `constraints`. */
export function constraintProblems(c: JobConstraints | undefined): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  for (const list of ['host', 'notHost'] as const) {
    c?.[list]?.forEach((entry, i) => {
      if (entry.includes(':') && isIP(entry) !== 6) {
        problems.push({ field: `constraints/${list}/${i}`, message: `"${entry}" is neither a host name nor an address: write the host name, address or runner id alone, without a port` });
      }
    });
  }
  return problems;
}

/** Constraints as kept with the job: addresses in canonical form, duplicates and empty parts dropped, labels sorted. */
export function normalizeConstraints(c: JobConstraints | undefined): JobConstraints | undefined {
  if (!c) return undefined;
  const out: JobConstraints = {};
  if (c.host && c.host.length > 0) out.host = [...new Set(c.host.map(canonicalAddress))];
  if (c.notHost && c.notHost.length > 0) out.notHost = [...new Set(c.notHost.map(canonicalAddress))].sort();
  const keys = Object.keys(c.labels ?? {}).sort();
  if (keys.length > 0) out.labels = Object.fromEntries(keys.map((k) => [k, c.labels![k]!]));
  return out.host || out.notHost || out.labels ? out : undefined;
}

/** The constraints in words, for warnings and logs: `host one of a, b; labels zone=a, gpu=1`. */
export function describeConstraints(c: JobConstraints): string {
  const parts: string[] = [];
  if (c.host) parts.push(`host one of ${c.host.join(', ')}`);
  if (c.notHost) parts.push(`host none of ${c.notHost.join(', ')}`);
  if (c.labels) parts.push(`labels ${Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  return parts.join('; ');
}

/** What `satisfies` needs of a runner: a RunnerPlacement, or a registry entry (host as reported, maybe null). */
export interface PlacementSubject {
  id: string;
  host: string | null;
  addresses: readonly string[];
  labels: Readonly<Record<string, string>>;
}

/** Whether a runner may run a job with these constraints. store/lua/lib/placement.lua is the same rule for the claim script. */
export function satisfies(c: JobConstraints | undefined, r: PlacementSubject): boolean {
  if (!c) return true;
  const host = r.host?.toLowerCase() ?? null;
  const isAddress = (want: string): boolean => r.addresses.includes(canonicalAddress(want.toLowerCase()));
  const names = (want: string): boolean => want === r.id || want.toLowerCase() === host || isAddress(want);
  if (c.host && !c.host.some(names)) return false;
  if (c.notHost?.some(names)) return false;
  for (const [key, want] of Object.entries(c.labels ?? {})) {
    const ok = key === 'host' ? want.toLowerCase() === host : key === 'address' ? isAddress(want) : r.labels[key] === want;
    if (!ok) return false;
  }
  return true;
}

/** The runner as the claim script reads it (ARGV): encoded once per runner, not per claim. */
export function encodePlacement(r: RunnerPlacement): string {
  return JSON.stringify({ id: r.id, host: r.host, addresses: r.addresses, labels: r.labels });
}


/** Parses RUNNER_LABELS entries (`key=value`); returns the problems instead when there are any. */
export function parseRunnerLabels(entries: readonly string[]): Record<string, string> | string[] {
  const problems: string[] = [];
  const labels: Record<string, string> = {};
  const keyRe = new RegExp(LABEL_KEY_PATTERN);
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const key = eq < 0 ? entry : entry.slice(0, eq).trim();
    const value = eq < 0 ? '' : entry.slice(eq + 1).trim();
    if (eq < 0 || value === '') problems.push(`"${entry}" is not key=value (e.g. zone=a)`);
    else if (!keyRe.test(key)) problems.push(`"${entry}": the key "${key}" may hold letters, digits and _ . / - (up to 63, starting with a letter or digit)`);
    else if ((AUTOMATIC_LABELS as readonly string[]).includes(key)) problems.push(`"${entry}": ${key} is set by the runner itself (its host name, its addresses); leave it out`);
    else if (!LABEL_VALUE.test(value)) problems.push(`"${entry}": the value may hold letters, digits and _ . : / @ + - (up to 256, no spaces or commas)`);
    else if (key in labels) problems.push(`"${entry}": ${key} is given twice`);
    else labels[key] = value;
  }
  if (Object.keys(labels).length > MAX_PLACEMENT_LABELS) problems.push(`holds ${Object.keys(labels).length} labels, more than ${MAX_PLACEMENT_LABELS}`);
  return problems.length > 0 ? problems : labels;
}

/**
 * The addresses a runner registers: those of its network interfaces that are not internal, IPv4 first; loopback only
 * when there is nothing else (a laptop offline).
 */
export function runnerAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const all = Object.values(interfaces).flatMap((list) => list ?? []);
  const external = all.filter((a) => !a.internal);
  const chosen = (external.length > 0 ? external : all).sort((a, b) => (a.family === b.family ? 0 : a.family === 'IPv4' ? -1 : 1));
  return [...new Set(chosen.map((a) => canonicalAddress(a.address.toLowerCase())))];
}

/** The runner's placement identity from its id and RUNNER_LABELS; host and addresses are this machine's. */
export function runnerPlacement(id: string, labels: Readonly<Record<string, string>>, host = hostname(), addresses = runnerAddresses()): RunnerPlacement {
  const lower = host.toLowerCase();
  return { id, host: lower, addresses, labels: { ...labels, host: lower, ...(addresses[0] ? { address: addresses[0] } : {}) } };
}
