import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type RecoveringChannelModel } from 'amqplib';
import { coerceError } from '../errors.js';
import type { ConsumeOptions, Consumer, JobMessage, MessageHandler, Transport, TransportCapabilities } from './transport.js';

export interface RabbitmqTransportOptions {
  url: string;
  /** Namespaces queue and exchange names, so several Drover installs (or tests) share one broker. */
  prefix: string;
  /** `quorum` (replicated, default) or `classic` (needed only for many priority levels). */
  queueType: 'quorum' | 'classic';
  /** Called on connection events, for logs and metrics. */
  onEvent?: (event: 'connect' | 'disconnect', detail?: string) => void;
}

/**
 * Redeliveries before a message is dead-lettered. Each happens only when a consumer dies or its channel closes
 * while holding the message, and a redelivered message of a claimed job is dropped at claim, so reaching this
 * means a message kills runners: it is parked in the dead-letter queue for a person to look at.
 */
const DELIVERY_LIMIT = 50;

/** Queue names on the broker. */
export function rabbitNames(prefix: string) {
  return {
    queue: (queue: string) => `drover.${prefix}.q.${queue}`,
    deadExchange: `drover.${prefix}.dead`,
    deadQueue: `drover.${prefix}.dead`,
  };
}

/**
 * RabbitMQ transport on amqplib with its built-in connection recovery. Publishes go through a confirm channel
 * and resolve only once the broker confirmed them; while the broker is unreachable they fail at once (the API
 * answers 503). Consumers hold one channel per queue with prefetch = the runner's slots and ack a message only
 * after its handler finished (the job's record is final). Channels and consumers are rebuilt on every reconnect.
 */
export class RabbitmqTransport implements Transport {
  readonly name = 'rabbitmq';
  readonly capabilities: TransportCapabilities = { nativeDelay: false, priorities: false };
  private readonly names: ReturnType<typeof rabbitNames>;
  private conn: RecoveringChannelModel | undefined;
  private connecting: Promise<RecoveringChannelModel> | undefined;
  private model: ChannelModel | undefined;
  private publisher: ConfirmChannel | undefined;
  private declared = new Set<string>();
  private readonly consumers = new Set<RabbitConsumer>();
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: RabbitmqTransportOptions) {
    this.names = rabbitNames(opts.prefix);
  }

  private connection(): Promise<RecoveringChannelModel> {
    this.connecting ??= (async () => {
      const conn = await amqp.connect(this.opts.url, {
        recovery: { initialDelay: 100, maxDelay: 5000, maxRetries: Infinity, waitForConnect: false },
      });
      conn.on('error', () => undefined); // surfaced as disconnects and failed calls
      conn.on('connect', (model: ChannelModel) => void this.onConnect(model));
      conn.on('disconnect', (err: Error) => this.onDisconnect(err));
      this.conn = conn;
      return conn;
    })();
    return this.connecting;
  }

  private async onConnect(model: ChannelModel): Promise<void> {
    this.model = model;
    this.declared = new Set();
    try {
      const ch = await model.createConfirmChannel();
      ch.on('error', () => undefined);
      ch.on('close', () => {
        if (this.publisher === ch) this.publisher = undefined;
      });
      await ch.assertExchange(this.names.deadExchange, 'fanout', { durable: true });
      await ch.assertQueue(this.names.deadQueue, { durable: true, arguments: { 'x-queue-type': this.opts.queueType } });
      await ch.bindQueue(this.names.deadQueue, this.names.deadExchange, '');
      this.publisher = ch;
      this.opts.onEvent?.('connect');
      await Promise.all([...this.consumers].map((c) => c.attach(model)));
    } catch (err) {
      this.opts.onEvent?.('disconnect', `setup after connect failed: ${coerceError(err).message}`);
    }
  }

  private onDisconnect(err: Error): void {
    this.model = undefined;
    this.publisher = undefined;
    for (const c of this.consumers) c.detach();
    this.opts.onEvent?.('disconnect', err.message);
  }

  /** Declares a Drover queue on the broker (idempotent; arguments must stay the same across versions). */
  async declare(ch: Channel, queue: string): Promise<string> {
    const name = this.names.queue(queue);
    if (this.declared.has(name)) return name;
    const args: Record<string, unknown> = { 'x-queue-type': this.opts.queueType, 'x-dead-letter-exchange': this.names.deadExchange };
    if (this.opts.queueType === 'quorum') args['x-delivery-limit'] = DELIVERY_LIMIT;
    await ch.assertQueue(name, { durable: true, arguments: args });
    this.declared.add(name);
    return name;
  }

  async ready(timeoutMs = 10_000): Promise<void> {
    await this.connection();
    const deadline = Date.now() + timeoutMs;
    while (!this.publisher) {
      if (Date.now() > deadline) throw new Error(`RabbitMQ not reachable within ${timeoutMs} ms (ECONNREFUSED?)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  isConnected(): boolean {
    return this.publisher !== undefined;
  }

  async publish(messages: JobMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const ch = this.publisher;
    if (!ch) throw new Error('RabbitMQ not reachable: broker connection is down (ECONNREFUSED)');
    for (const q of new Set(messages.map((m) => m.queue))) await this.declare(ch, q);
    for (const m of messages) {
      const ok = ch.publish('', this.names.queue(m.queue), Buffer.from(JSON.stringify(m)), {
        persistent: true,
        contentType: 'application/json',
        messageId: m.jobId,
      });
      if (!ok) await new Promise((r) => ch.once('drain', r));
    }
    // Resolves when the broker confirmed every message on this channel; rejects if any was nacked or the channel died.
    await ch.waitForConfirms();
  }

  consume(options: ConsumeOptions, handler: MessageHandler): Consumer {
    void this.connection();
    const consumer = new RabbitConsumer(this, options, handler, () => this.consumers.delete(consumer));
    this.consumers.add(consumer);
    if (this.model) void consumer.attach(this.model);
    return consumer;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.consumers].map((c) => c.close()));
      const conn = this.conn ?? (this.connecting ? await this.connecting.catch(() => undefined) : undefined);
      await conn?.close().catch(() => undefined);
    })();
    return this.closing;
  }
}

interface Subscription {
  ch: Channel;
  queue: string;
  name: string;
  tag: string | undefined;
}

/** The consumers of one runner: a channel per queue, rebuilt after every reconnect. */
class RabbitConsumer implements Consumer {
  private subs: Subscription[] = [];
  private paused = false;
  private closed: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly transport: RabbitmqTransport,
    private readonly options: ConsumeOptions,
    private readonly handler: MessageHandler,
    private readonly onClosed: () => void,
  ) {}

  async attach(model: ChannelModel): Promise<void> {
    if (this.closed) return;
    this.detach();
    await Promise.all(this.options.queues.map((q) => this.open(model, q)));
  }

  private async open(model: ChannelModel, queue: string): Promise<void> {
    if (this.closed || !this.transport.isConnected()) return;
    try {
      const ch = await model.createChannel();
      ch.on('error', (err: Error) => this.options.onError?.(err));
      const sub: Subscription = { ch, queue, name: await this.transport.declare(ch, queue), tag: undefined };
      // A channel closed by the broker (a consumer timeout, say) is reopened; its unacked messages were requeued.
      ch.on('close', () => {
        if (this.closed || !this.subs.includes(sub)) return;
        this.subs = this.subs.filter((x) => x !== sub);
        setTimeout(() => void this.open(model, queue), 200);
      });
      await ch.prefetch(this.options.concurrency);
      this.subs.push(sub);
      if (!this.paused) await this.start(sub);
    } catch (err) {
      this.options.onError?.(coerceError(err));
    }
  }

  private async start(sub: Subscription): Promise<void> {
    const { consumerTag } = await sub.ch.consume(sub.name, (msg: ConsumeMessage | null) => {
      if (!msg) return; // cancelled by the broker (queue deleted)
      const p = this.deliver(sub.ch, msg);
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    });
    sub.tag = consumerTag;
  }

  private async deliver(ch: Channel, msg: ConsumeMessage): Promise<void> {
    let parsed: JobMessage;
    try {
      parsed = JSON.parse(msg.content.toString()) as JobMessage;
    } catch {
      ch.nack(msg, false, false); // unreadable: dead-letter it
      return;
    }
    try {
      await this.handler(parsed);
    } catch (err) {
      this.options.onError?.(coerceError(err));
    }
    try {
      ch.ack(msg);
    } catch {
      // The channel closed meanwhile: the broker requeued the message and its redelivery is dropped at claim.
    }
  }

  detach(): void {
    const old = this.subs;
    this.subs = [];
    for (const sub of old) void sub.ch.close().catch(() => undefined);
  }

  /** Stops deliveries but keeps the channels: unacked messages are acked as their jobs finish. */
  async pause(): Promise<void> {
    this.paused = true;
    await Promise.allSettled(
      this.subs.map(async (sub) => {
        if (sub.tag) await sub.ch.cancel(sub.tag);
        sub.tag = undefined;
      }),
    );
  }

  resume(): void {
    this.paused = false;
    for (const sub of this.subs) if (!sub.tag) void this.start(sub).catch((err: unknown) => this.options.onError?.(coerceError(err)));
  }

  isRunning(): boolean {
    return !this.paused && this.transport.isConnected() && this.subs.length === this.options.queues.length;
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.allSettled([...this.inFlight]);
      this.detach();
      this.onClosed();
    })();
    return this.closed;
  }
}
