/**
 * The broker contract. A broker only carries "run job X" messages; the store holds everything users see.
 * Delivery is at-least-once: consumers must tolerate duplicates (the store's atomic claim drops them).
 */
export interface JobMessage {
  jobId: string;
  queue: string;
  /** The job's priority (MIN_PRIORITY..MAX_PRIORITY, higher is more urgent); absent: DEFAULT_PRIORITY. */
  priority?: number;
}

/** What a broker can do natively; services read flags instead of checking which broker they have. */
export interface TransportCapabilities {
  /** The broker can hold a message until a time (we still schedule in Redis; this is informational). */
  nativeDelay: boolean;
  /** The broker hands out more urgent messages of a queue first (BullMQ always; RabbitMQ with classic queues). */
  priorities: boolean;
}

export type MessageHandler = (message: JobMessage) => Promise<void>;

export interface ConsumeOptions {
  /** The queues consumed from the start; `Consumer.add` adds more later. */
  queues: string[];
  /** Messages in flight at once per queue. */
  concurrency: number;
  onError?: (err: Error) => void;
}

export interface Consumer {
  /**
   * Consume these queues too (a runner serving `*` found new ones). Queues consumed already are skipped; a paused
   * consumer starts on them when resumed; a closed one ignores the call.
   */
  add(queues: string[]): void;
  /** The queues consumed (asked for, whether or not the broker is reachable now). */
  queues(): string[];
  /** Stop receiving new messages; in-flight handlers keep running. */
  pause(): Promise<void>;
  resume(): void;
  /** Stop and wait for in-flight handlers. Idempotent. */
  close(): Promise<void>;
  /** True while the consumer is connected and fetching (liveness). */
  isRunning(): boolean;
}

export interface Transport {
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  /** Resolves when the broker is reachable. */
  ready(): Promise<void>;
  /** True while publishing can succeed (readiness). */
  isConnected(): boolean;
  /** Resolves only after the broker confirmed every message. */
  publish(messages: JobMessage[]): Promise<void>;
  consume(options: ConsumeOptions, handler: MessageHandler): Consumer;
  /**
   * How many messages of a queue the broker holds ready, not yet delivered to a consumer (RabbitMQ). Where the store
   * orders deliveries (no `priorities`: a delivery may claim another waiting job, see CLAIM), the scheduler uses it to
   * republish jobs left waiting without a message (sweepWaiting).
   */
  readyMessages?(queue: string): Promise<number>;
  /** Idempotent. */
  close(): Promise<void>;
}
