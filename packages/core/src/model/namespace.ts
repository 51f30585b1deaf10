/**
 * Namespaces: the unit of isolation and of scale. Each has its own key prefix, so its own hash tag and cluster slot,
 * its own queues, schedules, workflows, events and webhooks, and its own broker queues. The `default` namespace is
 * the deployment's prefix itself (`{drover}:...`), so a deployment from before namespaces is its default namespace
 * with no key moved; another namespace `x` lives under `{drover/x}:...` (`/` never appears in DROVER_PREFIX, so no
 * prefix of another deployment can collide with a namespace's).
 */
export const DEFAULT_NAMESPACE = 'default';

/** Lower-case letters, digits and inner dashes, at most 40 characters: safe in keys, broker names and labels. */
export const NAMESPACE_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;

/** Why `name` cannot be a namespace, or undefined when it can. */
export function namespaceProblem(name: string): string | undefined {
  return NAMESPACE_PATTERN.test(name) ? undefined : `a namespace is 1 to 40 lower-case letters, digits and inner dashes (got "${name.slice(0, 60)}")`;
}

/** The key prefix of namespace `ns` in a deployment of prefix `base` (DROVER_PREFIX). */
export function namespacePrefix(base: string, ns: string): string {
  return ns === DEFAULT_NAMESPACE ? base : `${base}/${ns}`;
}

/** A namespace as the registry keeps it and the API shows it. */
export interface NamespaceInfo {
  name: string;
  description: string | null;
  /** ms since epoch; null for `default`, which exists without being created. */
  createdAt: number | null;
}

/**
 * Which namespaces a service or token serves: a list of names, or every namespace (`*`), new ones included.
 * Parsed from a comma list (RUNNER_NAMESPACE, a token's `namespaces`).
 */
export type NamespaceSelection = readonly string[] | '*';

/** Parses a list of namespace names or `*`; answers the problems instead when there are any. */
export function parseNamespaceSelection(items: readonly string[]): NamespaceSelection | { problems: string[] } {
  if (items.length === 0) return { problems: ['names no namespace'] };
  if (items.includes('*')) return items.length === 1 ? '*' : { problems: ['takes `*` alone or a list of names'] };
  const problems = items.map(namespaceProblem).filter((p): p is string => p !== undefined);
  return problems.length > 0 ? { problems } : [...new Set(items)];
}

/** parseNamespaceSelection's answer was its problems. */
export const selectionProblems = (v: NamespaceSelection | { problems: string[] }): string[] | undefined =>
  typeof v === 'object' && 'problems' in v ? v.problems : undefined;

export const selectionHas = (sel: NamespaceSelection, ns: string): boolean => sel === '*' || sel.includes(ns);
