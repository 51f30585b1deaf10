import { coerceError, type Consumer, type Logger, type QueueSelection } from '@drover/core';
import type { Redis } from 'ioredis';

export interface QueueWatcherOptions {
  /** The store's set of queue names (a queue joins it with its first job or its first settings). */
  queuesKey: string;
  /** How often the set's size is checked, ms. */
  scanMs: number;
}

/**
 * For a runner whose RUNNER_QUEUES holds a pattern (`*`, `build-*`): finds the queues it matches, now and as they
 * appear, and has the consumer take them on. Each period costs one SCARD; the set is read only when its size changed
 * (queues are never removed from it) or when the API announced a new queue on the control channel.
 */
export class QueueWatcher {
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private lastSize = -1;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly selection: QueueSelection,
    private readonly consumer: Consumer,
    private readonly log: Logger,
    private readonly opts: QueueWatcherOptions,
  ) {}

  async start(): Promise<void> {
    if (!this.selection.dynamic) return;
    await this.scan(true);
    this.timer = setInterval(() => void this.scan(false), this.opts.scanMs);
  }

  /**
   * Reads the queue set (`force`), or only when its size changed. Calls made during a scan run one more scan after
   * it, so a queue announced meanwhile is not missed. Never throws: a failed scan is retried on the next period.
   */
  scan(force = true): Promise<void> {
    if (this.stopped || !this.selection.dynamic) return Promise.resolve();
    if (this.scanning) {
      this.again ||= force;
      return this.scanning;
    }
    this.scanning = this.doScan(force)
      .catch((err: unknown) => this.log.warn({ err: coerceError(err) }, 'looking for new queues failed; trying again'))
      .finally(() => {
        this.scanning = undefined;
        if (this.again) {
          this.again = false;
          void this.scan(true);
        }
      });
    return this.scanning;
  }

  private async doScan(force: boolean): Promise<void> {
    const size = await this.redis.scard(this.opts.queuesKey);
    if (!force && size === this.lastSize) return;
    const names = await this.redis.smembers(this.opts.queuesKey);
    this.lastSize = names.length;
    const have = new Set(this.consumer.queues());
    const fresh = names.filter((q) => !have.has(q) && this.selection.serves(q)).sort();
    if (fresh.length === 0 || this.stopped) return;
    this.consumer.add(fresh);
    this.log.info({ queues: fresh, serving: have.size + fresh.length }, 'serving new queues');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.scanning;
  }
}
