import { DEFAULT_NAMESPACE, DroverMetrics, NamespaceSet, NamespaceStore, createRedis, namespacePrefix } from '@drover/core';
import type { Redis } from 'ioredis';
import { Runner, type RunnerOptions, type RunnerState } from './runner.js';

/**
 * The configuration of a namespace's runner: the namespace's prefix and the runner's id there. The Coyotes list
 * (DROVER_COYOTES_LIST_KEY) is an exact key outside every prefix, so only the default namespace's runner reads it:
 * otherwise each namespace's runner would take tasks from the one list into its own namespace.
 */
export function namespaceRunnerConfig<C extends RunnerOptions['config']>(config: C, ns: string, id: string): C {
  const compat = config.compat && ns !== DEFAULT_NAMESPACE ? { compat: { ...config.compat, coyotesList: false } } : {};
  return { ...config, prefix: namespacePrefix(config.prefix, ns), runner: { ...config.runner, id }, ...compat };
}

/**
 * The runner process: one Runner per namespace of RUNNER_NAMESPACE (`*`: every namespace, those created later within
 * `pollMs`), each with RUNNER_QUEUES and RUNNER_CONCURRENCY of its own, its own connections and spawner helper. In
 * its first namespace (default, for `*`) it registers as RUNNER_ID, in each other as `RUNNER_ID@<namespace>`: one
 * host's job uids, cgroups and registry entries never clash. The job uid pool is host-wide, so jobs of two
 * namespaces never share a uid.
 */
export class NamespacedRunner {
  private readonly registryRedis: Redis | undefined;
  private readonly set: NamespaceSet<Runner>;
  private readonly first: { ns: string; runner: Runner };
  readonly metrics: DroverMetrics;

  constructor(opts: RunnerOptions & { pollMs?: number }) {
    const { config } = opts;
    const selection = config.runner.namespaces;
    this.metrics = opts.metrics ?? new DroverMetrics({ defaultMetrics: false });
    const make = (ns: string, id: string): Runner => new Runner({
      ...opts,
      config: namespaceRunnerConfig(config, ns, id),
      logger: ns === DEFAULT_NAMESPACE ? opts.logger : opts.logger.child({ namespace: ns }),
      metrics: this.metrics.forNamespace(ns),
    });
    const firstNs = selection === '*' ? DEFAULT_NAMESPACE : selection[0]!;
    // Made here, so a configuration the runner cannot honour fails before anything starts.
    this.first = { ns: firstNs, runner: make(firstNs, config.runner.id) };
    this.registryRedis = selection === '*' ? createRedis(config.redisUrl, 'worker', `drover-runner-namespaces:${config.runner.id}`) : undefined;
    this.registryRedis?.on('error', (err) => opts.logger.warn({ err: err.message }, 'redis connection error'));
    this.set = new NamespaceSet({
      selection,
      // Read only under `*`; a list is served as given.
      ...(this.registryRedis ? { registry: new NamespaceStore(this.registryRedis, config.prefix) } : {}),
      log: opts.logger,
      ...(opts.pollMs ? { pollMs: opts.pollMs } : {}),
      start: async (ns) => {
        const runner = ns === firstNs ? this.first.runner : make(ns, `${config.runner.id}@${ns}`);
        await runner.start();
        return runner;
      },
    });
  }

  /** The runner of one namespace, once it is served. */
  of(ns: string): Runner | undefined {
    return this.set.members.get(ns);
  }

  get namespaces(): string[] {
    return this.set.names;
  }

  /** `running` once every namespace's runner is; else the state of the first that is not. */
  get state(): RunnerState {
    const members = [...this.set.members.values()];
    if (members.length === 0) return 'starting';
    return members.find((r) => r.state !== 'running')?.state ?? 'running';
  }

  start(): Promise<void> {
    return this.set.start();
  }

  isLive(): boolean {
    return this.set.members.size === 0 || this.set.every((r) => r.isLive());
  }

  readinessDetails(): Record<string, unknown> {
    return { ...this.first.runner.readinessDetails(), namespaces: this.namespaces };
  }

  /** Drains every namespace's runner at once (each waits for its own jobs, RUNNER_DRAIN_TIMEOUT_MS). */
  async close(): Promise<void> {
    await this.set.close();
    // The first runner was made before start; closed even when it never started.
    if (!this.set.members.has(this.first.ns)) await this.first.runner.close();
    await this.registryRedis?.quit().catch(() => this.registryRedis?.disconnect());
  }
}
