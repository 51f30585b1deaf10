import { coerceError } from './errors.js';
import type { Logger } from './logger.js';
import { DEFAULT_NAMESPACE, type NamespaceSelection } from './model/namespace.js';
import type { NamespaceStore } from './store/namespace-store.js';

/** What a service runs per namespace: a scheduler loop, a runner. */
export interface NamespaceMember {
  close(): Promise<void>;
}

export interface NamespaceSetOptions<T extends NamespaceMember> {
  /** The namespaces to serve: a list (started at once, whether created yet or not), or `*` (all, new ones too). */
  selection: NamespaceSelection;
  /** Where `*` finds the namespaces; a list needs none. */
  registry?: NamespaceStore;
  /** Makes and starts the member of one namespace; a failure is logged and tried again at the next look. */
  start: (namespace: string) => Promise<T>;
  log: Logger;
  /** How often `*` looks for namespaces created since. */
  pollMs?: number;
}

/**
 * One member per namespace served, for the services that serve several (the scheduler serves all, a runner those of
 * RUNNER_NAMESPACE). Under `*` the registry is read every `pollMs`, so a namespace created through the API is served
 * within that time without a restart. Namespaces are never deleted, so members only come.
 */
export class NamespaceSet<T extends NamespaceMember> {
  readonly members = new Map<string, T>();
  private readonly starting = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: NamespaceSetOptions<T>) {}

  /** Starts the members of the namespaces known now; the first failure of a listed namespace is thrown. */
  async start(): Promise<void> {
    const { selection } = this.opts;
    if (selection === '*') {
      if (!this.opts.registry) throw new Error('serving every namespace takes the namespace registry');
      await this.look(true);
      this.timer = setInterval(() => void this.look(false), this.opts.pollMs ?? 2000);
      this.timer.unref();
    } else {
      for (const ns of selection) await this.add(ns, true);
    }
  }

  /** The namespaces served now. */
  get names(): string[] {
    return [...this.members.keys()];
  }

  every(check: (member: T) => boolean): boolean {
    return this.members.size > 0 && [...this.members.values()].every(check);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled(this.starting.values());
    await Promise.all([...this.members.values()].map((m) => m.close()));
  }

  private async look(first: boolean): Promise<void> {
    let names: string[];
    try {
      names = (await this.opts.registry!.list()).map((n) => n.name);
    } catch (err) {
      // The default namespace is served even while the registry cannot be read (Redis down at start).
      if (first) names = [DEFAULT_NAMESPACE];
      else return;
      this.opts.log.warn({ err: coerceError(err) }, 'cannot read the namespaces; serving default until it can');
    }
    for (const ns of names) if (!this.members.has(ns)) await this.add(ns, first && ns === DEFAULT_NAMESPACE);
  }

  private add(ns: string, rethrow: boolean): Promise<void> {
    const pending = this.starting.get(ns);
    if (pending) return pending;
    const p = (async () => {
      try {
        const member = await this.opts.start(ns);
        if (this.closed) await member.close();
        else this.members.set(ns, member);
        if (ns !== DEFAULT_NAMESPACE) this.opts.log.info({ namespace: ns }, 'serving namespace');
      } catch (err) {
        if (rethrow) throw err;
        this.opts.log.error({ namespace: ns, err: coerceError(err) }, 'cannot serve namespace; trying again');
      } finally {
        this.starting.delete(ns);
      }
    })();
    this.starting.set(ns, p);
    return p;
  }
}
