import { DEFAULT_NAMESPACE, DroverMetrics, NamespaceSet, NamespaceStore, createRedis, namespacePrefix } from '@drover/core';
import type { Redis } from 'ioredis';
import { Scheduler, assertSchedulerConfig, type SchedulerOptions } from './scheduler.js';

/**
 * The scheduler process: one Scheduler per namespace, every namespace, those created later within `pollMs`. Each
 * works on its own namespace's keys only, so the scripts of one never wait on another's slot in a cluster.
 */
export class NamespacedScheduler {
  private readonly registryRedis: Redis;
  private readonly set: NamespaceSet<Scheduler>;
  readonly metrics: DroverMetrics;

  constructor(opts: SchedulerOptions & { pollMs?: number }) {
    this.metrics = opts.metrics ?? new DroverMetrics({ defaultMetrics: false });
    // Checked before anything connects: a scheduler without the callback key does not start.
    assertSchedulerConfig(opts.config);
    this.registryRedis = createRedis(opts.config.redisUrl, 'worker', 'drover-scheduler-namespaces');
    this.registryRedis.on('error', (err) => opts.logger.warn({ err: err.message }, 'redis connection error'));
    this.set = new NamespaceSet({
      selection: '*',
      registry: new NamespaceStore(this.registryRedis, opts.config.prefix),
      log: opts.logger,
      ...(opts.pollMs ? { pollMs: opts.pollMs } : {}),
      start: async (ns) => {
        const s = new Scheduler({
          ...opts,
          config: { ...opts.config, prefix: namespacePrefix(opts.config.prefix, ns) },
          logger: ns === DEFAULT_NAMESPACE ? opts.logger : opts.logger.child({ namespace: ns }),
          metrics: this.metrics.forNamespace(ns),
        });
        await s.start();
        return s;
      },
    });
  }

  /** The scheduler of one namespace, once it is served. */
  of(ns: string): Scheduler | undefined {
    return this.set.members.get(ns);
  }

  get namespaces(): string[] {
    return this.set.names;
  }

  start(): Promise<void> {
    return this.set.start();
  }

  isLive(): boolean {
    return this.set.every((s) => s.isLive());
  }

  isReady(): boolean {
    return this.set.every((s) => s.isReady());
  }

  async close(): Promise<void> {
    await this.set.close();
    await this.registryRedis.quit().catch(() => this.registryRedis.disconnect());
  }
}
