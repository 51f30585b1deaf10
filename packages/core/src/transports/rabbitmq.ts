import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type RecoveringChannelModel } from 'amqplib';
import { coerceError } from '../errors.js';
import { DEFAULT_PRIORITY, MAX_PRIORITY } from '../model/job-spec.js';
import type { ConsumeOptions, Consumer, JobMessage, MessageHandler, Transport, TransportCapabilities } from './transport.js';

export interface RabbitmqTransportOptions {
  url: string;
  /** Namespaces queue and exchange names, so several Drover installs (or tests) share one broker. */
  prefix: string;
  /** `quorum` (replicated, default; no priorities: the store orders, see CLAIM) or `classic` (with `x-max-priority`). */
  queueType: 'quorum' | 'classic';
  /** Called on connection events, for logs and metrics. */
  onEvent?: (event: 'connect' | 'disconnect', detail?: string) => void;
  /** Called with what an operator should know (a queue that cannot carry priorities); default: nothing. */
  onWarning?: (message: string) => void;
}

/**
 * Redeliveries before a message is dead-lettered. Each happens only when a consumer dies or its channel closes
 * while holding the message, and a redelivered message of a claimed job is dropped at claim, so reaching this
 * means a message kills runners: it is parked in the dead-letter queue for a person to look at.
 */
const DELIVERY_LIMIT = 50;

/** Tries per message before a publish counts as refused (see publish). */
const PUBLISH_ATTEMPTS = 4;

/**
 * The AMQP priority of a Drover one: 0..9 (a classic queue's x-max-priority is 9). RabbitMQ 4's quorum queues know two
 * levels, 0-4 and 5 and up: this way the default (5 -> 4) is the lower one and only more urgent jobs go ahead of it.
 */
export const amqpPriority = (priority: number | undefined): number => (priority ?? DEFAULT_PRIORITY) - 1;
const MAX_AMQP_PRIORITY = MAX_PRIORITY - 1;

/** The broker refused a declaration whose arguments differ from the existing queue's. */
const isPreconditionFailed = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === 406;

/** Queue names on the broker. */
export function rabbitNames(prefix: string) {
  return {
    queue: (queue: string) => `drover.${prefix}.q.${queue}`,
    deadExchange: `drover.${prefix}.dead`,
    deadQueue: `drover.${prefix}.dead`,
  };
}

/** A channel of its own for one call: a refused call (a declaration, a check) closes the channel it ran on. */
async function onScratchChannel<T>(model: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await model.createChannel();
  ch.on('error', () => undefined);
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/**
 * RabbitMQ transport on amqplib with its built-in connection recovery. Publishes go through a confirm channel
 * and resolve only once the broker confirmed them; while the broker is unreachable they fail at once (the API
 * answers 503). Consumers hold one channel per queue with prefetch = the runner's slots and ack a message only
 * after its handler finished (the job's record is final). Channels and consumers are rebuilt on every reconnect.
 */
export class RabbitmqTransport implements Transport {
  readonly name = 'rabbitmq';
  readonly capabilities: TransportCapabilities;
  private readonly names: ReturnType<typeof rabbitNames>;
  private conn: RecoveringChannelModel | undefined;
  private connecting: Promise<RecoveringChannelModel> | undefined;
  private model: ChannelModel | undefined;
  private publisher: ConfirmChannel | undefined;
  private declared = new Set<string>();
  private readonly consumers = new Set<RabbitConsumer>();
  private closing: Promise<void> | undefined;

  /** Queues declared before priorities existed (no x-max-priority), used as they are: warned about once each. */
  private readonly withoutPriorities = new Set<string>();

  constructor(private readonly opts: RabbitmqTransportOptions) {
    this.names = rabbitNames(opts.prefix);
    this.capabilities = { nativeDelay: false, priorities: opts.queueType === 'classic' };
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
      ch.setMaxListeners(0); // every publish in flight listens for the channel closing
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

  /**
   * Declares a Drover queue on the broker (idempotent), on a channel of its own: a refused declaration closes its
   * channel. Classic queues get x-max-priority. One declared without it by an older version cannot be changed (RabbitMQ
   * refuses other arguments for an existing queue): it is used as it is, without priorities, until it is deleted and
   * declared again (docs/jobs.md says how, without losing messages).
   */
  async declare(queue: string): Promise<string> {
    const name = this.names.queue(queue);
    if (this.declared.has(name)) return name;
    const model = this.model;
    if (!model) throw new Error('RabbitMQ not reachable: broker connection is down (ECONNREFUSED)');
    const args: Record<string, unknown> = { 'x-queue-type': this.opts.queueType, 'x-dead-letter-exchange': this.names.deadExchange };
    if (this.opts.queueType === 'quorum') args['x-delivery-limit'] = DELIVERY_LIMIT;
    else args['x-max-priority'] = MAX_AMQP_PRIORITY;
    try {
      await onScratchChannel(model, (ch) => ch.assertQueue(name, { durable: true, arguments: args }));
    } catch (err) {
      if (!isPreconditionFailed(err) || args['x-max-priority'] === undefined) throw err;
      await onScratchChannel(model, (ch) => ch.checkQueue(name));
      if (!this.withoutPriorities.has(name)) {
        this.withoutPriorities.add(name);
        this.opts.onWarning?.(`RabbitMQ queue ${name} was declared without x-max-priority (before priorities existed): its jobs start in the order they came whatever their priority, until it is deleted and declared again (see docs/jobs.md)`);
      }
    }
    this.declared.add(name);
    return name;
  }

  async readyMessages(queue: string): Promise<number> {
    const model = this.model;
    if (!model) throw new Error('RabbitMQ not reachable: broker connection is down (ECONNREFUSED)');
    const name = await this.declare(queue);
    return (await onScratchChannel(model, (ch) => ch.checkQueue(name))).messageCount;
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
    let pending = messages;
    for (let attempt = 1; ; attempt++) {
      const ch = this.publisher;
      if (!ch) throw new Error('RabbitMQ not reachable: broker connection is down (ECONNREFUSED)');
      for (const q of new Set(pending.map((m) => m.queue))) await this.declare(q);
      const outcomes = await this.publishConfirmed(ch, pending);
      const nacked = pending.filter((_, i) => outcomes[i] === 'nacked');
      if (nacked.length === 0) return;
      // A nack means the broker did not take the message. A quorum queue nacks for a moment while its leader is
      // being elected (right after another client declared it), so a few short retries turn that into a delay.
      // A retried message that did arrive after all is harmless: a second delivery of a claimed job is dropped.
      if (attempt >= PUBLISH_ATTEMPTS) throw new Error(`RabbitMQ refused ${nacked.length} message(s) after ${attempt} attempts (nacked)`);
      pending = nacked;
      await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
    }
  }

  /** Publishes messages and resolves with each one's confirm: 'acked' (the broker has it) or 'nacked' (refused). */
  private async publishConfirmed(ch: ConfirmChannel, messages: JobMessage[]): Promise<('acked' | 'nacked')[]> {
    let onClose: (() => void) | undefined;
    const closed = new Promise<never>((_, reject) => {
      onClose = () => reject(new Error('RabbitMQ channel closed before the broker confirmed the messages'));
      ch.once('close', onClose);
    });
    try {
      const confirms: Promise<'acked' | 'nacked'>[] = [];
      for (const m of messages) {
        let ok = true;
        confirms.push(
          new Promise((resolve) => {
            ok = ch.publish(
              '',
              this.names.queue(m.queue),
              Buffer.from(JSON.stringify(m)),
              { persistent: true, contentType: 'application/json', messageId: m.jobId, priority: amqpPriority(m.priority) },
              (err: unknown) => resolve(err ? 'nacked' : 'acked'),
            );
          }),
        );
        // Back-pressure: wait for the socket to drain before writing more of a large batch.
        if (!ok) await Promise.race([new Promise((r) => ch.once('drain', r)), closed]);
      }
      return await Promise.race([Promise.all(confirms), closed]);
    } finally {
      if (onClose) ch.off('close', onClose);
      closed.catch(() => undefined);
    }
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
  /** Every queue asked for: the channels opened on each (re)connect. */
  private readonly wanted: string[];
  private model: ChannelModel | undefined;
  private paused = false;
  private closed: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly transport: RabbitmqTransport,
    private readonly options: ConsumeOptions,
    private readonly handler: MessageHandler,
    private readonly onClosed: () => void,
  ) {
    this.wanted = [...new Set(options.queues)];
  }

  async attach(model: ChannelModel): Promise<void> {
    if (this.closed) return;
    this.detach();
    this.model = model;
    await Promise.all(this.wanted.map((q) => this.open(model, q)));
  }

  add(queues: string[]): void {
    if (this.closed) return;
    for (const q of queues) {
      if (this.wanted.includes(q)) continue;
      this.wanted.push(q);
      // Not connected now: the next attach opens it with the others. Paused: opened, consumed on resume.
      if (this.model) void this.open(this.model, q);
    }
  }

  queues(): string[] {
    return [...this.wanted];
  }

  private async open(model: ChannelModel, queue: string): Promise<void> {
    if (this.closed || !this.transport.isConnected()) return;
    try {
      const ch = await model.createChannel();
      ch.on('error', (err: Error) => this.options.onError?.(err));
      const sub: Subscription = { ch, queue, name: await this.transport.declare(queue), tag: undefined };
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
    this.model = undefined;
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
    return !this.paused && this.transport.isConnected() && this.subs.length === this.wanted.length;
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
