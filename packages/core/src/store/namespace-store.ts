import type { Redis } from 'ioredis';
import { DEFAULT_NAMESPACE, type NamespaceInfo } from '../model/namespace.js';
import { Keys } from './keys.js';

/**
 * The namespaces of a deployment: a hash in the default namespace's slot (`{prefix}:namespaces`, name -> JSON).
 * `default` is always there without an entry. Namespaces are created, never renamed; see docs/namespaces.md.
 */
export class NamespaceStore {
  private readonly key: string;

  /** `prefix`: DROVER_PREFIX, the default namespace's prefix. */
  constructor(private readonly redis: Redis, prefix: string) {
    this.key = new Keys(prefix).name('namespaces');
  }

  /** Every namespace, `default` first, then by name. */
  async list(): Promise<NamespaceInfo[]> {
    const all = await this.redis.hgetall(this.key);
    const others = Object.entries(all).map(([name, raw]) => decode(name, raw)).sort((a, b) => a.name.localeCompare(b.name));
    return [{ name: DEFAULT_NAMESPACE, description: null, createdAt: null }, ...others.filter((n) => n.name !== DEFAULT_NAMESPACE)];
  }

  async get(name: string): Promise<NamespaceInfo | undefined> {
    if (name === DEFAULT_NAMESPACE) return { name, description: null, createdAt: null };
    const raw = await this.redis.hget(this.key, name);
    return raw === null ? undefined : decode(name, raw);
  }

  /** Creates `name` unless it exists (HSETNX: concurrent creators agree on one); answers whether this call made it. */
  async create(name: string, description: string | null, now = Date.now()): Promise<{ created: boolean; namespace: NamespaceInfo }> {
    if (name === DEFAULT_NAMESPACE) return { created: false, namespace: (await this.get(name))! };
    const info: NamespaceInfo = { name, description, createdAt: now };
    const created = (await this.redis.hsetnx(this.key, name, JSON.stringify({ description, createdAt: now }))) === 1;
    return { created, namespace: created ? info : (await this.get(name))! };
  }
}

function decode(name: string, raw: string): NamespaceInfo {
  const v = JSON.parse(raw) as { description?: string | null; createdAt?: number };
  return { name, description: v.description ?? null, createdAt: v.createdAt ?? null };
}
