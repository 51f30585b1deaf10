import type { Redis, Result } from 'ioredis';
import { newJobId } from '../ids.js';
import type { Delivery, DeliveryAttempt, Webhook, WebhookInput, WebhookUpdate } from '../model/webhook.js';
import { defineScripts } from '../redis.js';
import { generateWebhookSecret } from '../webhook-signing.js';
import type { Keys } from './keys.js';
import { lua } from './lua.js';

const WH_ENQUEUE = lua('wh-enqueue');
const WH_TAKE = lua('wh-take');
const WH_RESULT = lua('wh-result');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    droverWhEnqueue(...args: (string | number)[]): Result<number, Context>;
    droverWhTake(...args: (string | number)[]): Result<string[], Context>;
    droverWhResult(...args: (string | number)[]): Result<number, Context>;
  }
}

export interface DueDelivery {
  id: string;
  webhookId: string;
  url: string;
  body: string;
  eventType: string;
  createdAt: number;
  /** Attempts made so far (for the backoff). */
  attempts: number;
}

export interface NewDelivery {
  webhookId: string;
  url: string;
  eventType: string;
  jobId: string | null;
  body: string;
}

/** A stored attempt; those recorded before outcomes existed (status, error) get theirs from the status. */
function readAttempt(json: string): DeliveryAttempt {
  const a = JSON.parse(json) as Partial<DeliveryAttempt> & { at: string };
  const status = typeof a.status === 'number' ? a.status : null;
  const outcome = a.outcome ?? (status === null ? 'unreachable' : status >= 200 && status <= 299 ? 'delivered' : 'rejected');
  return { at: a.at, outcome, status, retryAt: typeof a.retryAt === 'string' ? a.retryAt : null, cause: typeof a.cause === 'string' ? a.cause : null };
}

/** Webhook subscriptions and their deliveries. */
export class WebhookStore {
  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
  ) {
    defineScripts(redis, { droverWhEnqueue: WH_ENQUEUE, droverWhTake: WH_TAKE, droverWhResult: WH_RESULT });
  }

  private get subsKey(): string {
    return this.keys.name('webhooks');
  }

  /** Bumped with every change of the subscriptions, so readers that cache them know when to read again. */
  private get subsVersionKey(): string {
    return this.keys.name('webhooksVersion');
  }

  /** Writes a subscription and bumps the version in one step. */
  private async save(hook: Webhook): Promise<void> {
    await this.redis.multi().hset(this.subsKey, hook.id, JSON.stringify(hook)).incr(this.subsVersionKey).exec();
  }

  /** Changes whenever a subscription is created, changed or removed. */
  async subscriptionsVersion(): Promise<string> {
    return (await this.redis.get(this.subsVersionKey)) ?? '0';
  }

  async create(input: WebhookInput, now = Date.now()): Promise<Webhook> {
    const hook: Webhook = {
      id: newJobId(now),
      url: input.url,
      events: input.events ?? [],
      queues: input.queues ?? [],
      secret: input.secret ?? generateWebhookSecret(),
      enabled: input.enabled ?? true,
      description: input.description ?? '',
      createdAt: new Date(now).toISOString(),
    };
    await this.save(hook);
    return hook;
  }

  async list(): Promise<Webhook[]> {
    return Object.values(await this.redis.hgetall(this.subsKey))
      .map((v) => JSON.parse(v) as Webhook)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<Webhook | null> {
    const v = await this.redis.hget(this.subsKey, id);
    return v ? (JSON.parse(v) as Webhook) : null;
  }

  async update(id: string, change: WebhookUpdate): Promise<Webhook | null> {
    const hook = await this.get(id);
    if (!hook) return null;
    const next: Webhook = { ...hook, ...change };
    await this.save(next);
    return next;
  }

  async remove(id: string): Promise<boolean> {
    const [removed] = (await this.redis.multi().hdel(this.subsKey, id).incr(this.subsVersionKey).exec()) ?? [];
    return removed?.[1] === 1;
  }

  /** Records the deliveries of a batch of events and acknowledges the events in the consumer group. */
  async enqueue(stream: string, group: string, batch: { eventId: string; deliveries: (NewDelivery & { id: string })[] }[], now = Date.now()): Promise<void> {
    if (batch.length === 0) return;
    const args: (string | number)[] = [this.keys.routing, now, stream, group];
    for (const e of batch) {
      args.push(e.eventId, e.deliveries.length);
      for (const d of e.deliveries) args.push(d.id, d.webhookId, d.url, d.eventType, d.jobId ?? '', d.body);
    }
    await this.redis.droverWhEnqueue(...args);
  }

  async takeDue(limit: number, leaseMs: number, now = Date.now()): Promise<DueDelivery[]> {
    const flat = await this.redis.droverWhTake(this.keys.routing, now, now + leaseMs, limit);
    const out: DueDelivery[] = [];
    for (let i = 0; i + 6 < flat.length; i += 7) {
      out.push({
        id: flat[i]!, webhookId: flat[i + 1]!, url: flat[i + 2]!, body: flat[i + 3]!, eventType: flat[i + 4]!, createdAt: Number(flat[i + 5]), attempts: Number(flat[i + 6]),
      });
    }
    return out;
  }

  /** Records an attempt (null: none was made); `nextAt` schedules another, null ends the delivery (delivered when ok). */
  async result(id: string, ok: boolean, attempt: DeliveryAttempt | null, nextAt: number | null, now = Date.now()): Promise<void> {
    await this.redis.droverWhResult(this.keys.routing, id, now, ok ? 1 : 0, attempt ? JSON.stringify(attempt) : '', nextAt ?? '');
  }

  /** Deliveries of a webhook (or of a job's callbacks), newest first. */
  async deliveries(owner: { webhookId: string } | { jobId: string }, limit: number, before?: number): Promise<Delivery[]> {
    const idx = 'webhookId' in owner ? this.keys.name('webhookDeliveries', owner.webhookId) : this.keys.name('jobCallbacks', owner.jobId);
    const ids = await this.redis.zrevrangebyscore(idx, before !== undefined ? `(${before}` : '+inf', '-inf', 'LIMIT', 0, limit);
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.name('delivery', id)).lrange(this.keys.name('deliveryAttempts', id), 0, -1);
    const rows = (await pipe.exec()) ?? [];
    const out: Delivery[] = [];
    ids.forEach((_, i) => {
      const h = rows[i * 2]?.[1] as Record<string, string> | undefined;
      const attempts = (rows[i * 2 + 1]?.[1] as string[] | undefined) ?? [];
      if (!h?.id) return;
      out.push({
        id: h.id,
        webhookId: h.webhookId ?? '',
        url: h.url ?? '',
        eventId: h.eventId ?? '',
        eventType: h.eventType ?? '',
        jobId: h.jobId || null,
        state: h.state as Delivery['state'],
        attempts: attempts.map(readAttempt),
        createdAt: new Date(Number(h.createdAt)).toISOString(),
        nextAttemptAt: h.nextAt ? new Date(Number(h.nextAt)).toISOString() : null,
      });
    });
    return out;
  }
}
