import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { coerceError } from '../errors.js';
import { DEFAULT_PRIORITY, MAX_PRIORITY } from '../model/job-spec.js';
import { connectRedis, createRedis } from '../redis.js';
import type { ConsumeOptions, Consumer, JobMessage, MessageHandler, Transport, TransportCapabilities } from './transport.js';

export interface BullmqTransportOptions {
  redisUrl: string;
  /** Key prefix for BullMQ; must carry the store's hash tag (see Keys.bull). */
  prefix: string;
  /** Connection lost / re-established, for logs and the reconnect counter. */
  onEvent?: (event: 'connect' | 'disconnect', detail?: string) => void;
}

/** Reports a Redis connection's losses and recoveries (not its first connect, which `ready()` covers). */
function watchConnection(redis: Redis, onEvent: BullmqTransportOptions['onEvent'], closing: () => boolean): void {
  if (!onEvent) return;
  let up = false;
  let lost = false;
  redis.on('ready', () => {
    if (lost) onEvent('connect');
    up = true;
    lost = false;
  });
  redis.on('close', () => {
    if (!up || closing()) return;
    up = false;
    lost = true;
    onEvent('disconnect', 'redis connection closed');
  });
}

/** Messages are removed as soon as they are handled: the store keeps the history, not BullMQ. */
const JOB_OPTS = { removeOnComplete: true, removeOnFail: true, attempts: 1 } as const;
/**
 * BullMQ appends about four entries per job to a stream of its own that Drover never reads (Drover's events are in
 * its store). Its writes cannot be turned off; capped this low, it keeps a few hundred entries instead of 10 000.
 */
export const BULLMQ_EVENTS_MAX_LEN = 100;

/**
 * BullMQ's priority for a Drover one: BullMQ's 1 is its most urgent, and a message without one (0) goes before every
 * prioritized message, so every message gets one (10 -> 1, the default 5 -> 6, 1 -> 10).
 */
export const bullPriority = (priority: number | undefined): number => MAX_PRIORITY + 1 - (priority ?? DEFAULT_PRIORITY);

/** BullMQ queue name for a Drover queue. */
const bullName = (queue: string): string => `q-${queue}`;

export class BullmqTransport implements Transport {
  readonly name = 'bullmq';
  readonly capabilities: TransportCapabilities = { nativeDelay: true, priorities: true };
  private readonly producer: Redis;
  private readonly queues = new Map<string, Queue>();
  private readonly consumers = new Set<Consumer>();
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: BullmqTransportOptions) {
    this.producer = createRedis(opts.redisUrl, 'producer', 'drover-publisher');
    // Errors surface on the calls that fail; an unhandled 'error' event would crash the process.
    this.producer.on('error', () => undefined);
    watchConnection(this.producer, opts.onEvent, () => this.closing !== undefined);
  }

  async ready(): Promise<void> {
    await connectRedis(this.producer);
  }

  isConnected(): boolean {
    return this.producer.status === 'ready';
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      // No version check: it is a command at construction, and a Queue whose construction failed (Redis down)
      // stays broken for good.
      q = new Queue(bullName(name), {
        connection: this.producer, prefix: this.opts.prefix, skipWaitingForReady: true, skipVersionCheck: true,
        streams: { events: { maxLen: BULLMQ_EVENTS_MAX_LEN } },
      });
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  async publish(messages: JobMessage[]): Promise<void> {
    const byQueue = new Map<string, JobMessage[]>();
    for (const m of messages) {
      const list = byQueue.get(m.queue) ?? [];
      list.push(m);
      byQueue.set(m.queue, list);
    }
    await Promise.all(
      [...byQueue].map(async ([queue, list]) => {
        const q = this.queue(queue);
        try {
          await q.addBulk(list.map((m) => ({ name: 'run', data: m, opts: { ...JOB_OPTS, priority: bullPriority(m.priority) } })));
        } catch (err) {
          // Start the next publish on a fresh Queue: BullMQ objects can be left unusable by a connection loss.
          if (this.queues.get(queue) === q) this.queues.delete(queue);
          void q.close().catch(() => undefined);
          throw err;
        }
      }),
    );
  }

  consume(options: ConsumeOptions, handler: MessageHandler): Consumer {
    const connection = createRedis(this.opts.redisUrl, 'subscriber', 'drover-consumer');
    connection.on('error', () => undefined);
    let closing: Promise<void> | undefined;
    watchConnection(connection, this.opts.onEvent, () => closing !== undefined || this.closing !== undefined);
    // One Worker per queue (each holds a blocking connection of its own); queues added while paused wait for resume.
    const workers = new Map<string, Worker<JobMessage>>();
    const waiting = new Set<string>();
    let paused = false;
    const startWorker = (queue: string): void => {
      const w = new Worker<JobMessage>(bullName(queue), (job) => handler(job.data), {
        connection,
        prefix: this.opts.prefix,
        concurrency: options.concurrency,
        // The store's lease decides when a job is lost; BullMQ's stall check only re-delivers the message,
        // and a re-delivered message of a running job is dropped at claim.
        maxStalledCount: 1000,
      });
      w.on('error', (err) => options.onError?.(coerceError(err)));
      workers.set(queue, w);
    };
    const add = (queues: string[]): void => {
      for (const q of queues) {
        if (closing || workers.has(q) || waiting.has(q)) continue;
        if (paused) waiting.add(q);
        else startWorker(q);
      }
    };
    const consumer: Consumer = {
      add,
      queues: () => [...workers.keys(), ...waiting],
      pause: async () => {
        paused = true;
        await Promise.all([...workers.values()].map((w) => w.pause(true)));
      },
      resume: () => {
        paused = false;
        workers.forEach((w) => w.resume());
        const later = [...waiting];
        waiting.clear();
        add(later);
      },
      isRunning: () => [...workers.values()].every((w) => w.isRunning()),
      close: () => {
        closing ??= (async () => {
          await Promise.allSettled([...workers.values()].map((w) => w.close()));
          connection.disconnect();
          this.consumers.delete(consumer);
        })();
        return closing;
      },
    };
    add(options.queues);
    this.consumers.add(consumer);
    return consumer;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.consumers].map((c) => c.close()));
      await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
      this.producer.disconnect();
    })();
    return this.closing;
  }
}
