import type { Redis, Result } from 'ioredis';
import { newJobId } from '../ids.js';
import type { Delivery, DeliveryAttempt, Webhook, WebhookInput, WebhookUpdate } from '../model/webhook.js';
import { defineScripts } from '../redis.js';
import { generateWebhookSecret } from '../webhook-signing.js';
import type { Keys } from './keys.js';

/** Finished deliveries (and their attempts) are kept this long; a webhook's list shows its last 1000. */
const DELIVERY_RETENTION_MS = 7 * 86_400_000;
const LIST_KEEP = 1000;

const SHARED = `
local base = ARGV[1]
local function dkey(id) return base .. ':wh:d:' .. id end
-- A delivery ended (delivered, or failed for good): the next one of its chain (same webhook, same job) may go.
local function finish(id, now)
  local h = redis.call('HMGET', dkey(id), 'chain')
  redis.call('ZREM', base .. ':wh:due', id)
  if h[1] then
    redis.call('LREM', h[1], 1, id)
    local nxt = redis.call('LINDEX', h[1], 0)
    if nxt then redis.call('ZADD', base .. ':wh:due', now, nxt) end
  end
  redis.call('PEXPIRE', dkey(id), ${DELIVERY_RETENTION_MS})
  redis.call('PEXPIRE', dkey(id) .. ':attempts', ${DELIVERY_RETENTION_MS})
end
`;

/**
 * ARGV: base, now, stream, group, then per event: eventId, n, and n deliveries of 6 fields (id, webhookId, url,
 * eventType, jobId|'', body). Records the deliveries, queues each behind earlier ones of its chain (per webhook
 * and job, so a receiver sees a job's events in order), and acknowledges the events, in one step.
 */
const WH_ENQUEUE = `${SHARED}
local now, stream, group = ARGV[2], ARGV[3], ARGV[4]
local i = 5
local acked = {}
while i <= #ARGV do
  local eventId, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    local id, webhookId, url, etype, jobId, body = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    i = i + 6
    local chain = base .. ':wh:chain:' .. webhookId .. ':' .. (jobId ~= '' and jobId or '-')
    redis.call('HSET', dkey(id), 'id', id, 'webhookId', webhookId, 'url', url, 'eventId', eventId, 'eventType', etype,
      'jobId', jobId, 'body', body, 'state', 'pending', 'createdAt', now, 'chain', chain)
    local idx = webhookId == 'callback' and (base .. ':wh:idx:job:' .. jobId) or (base .. ':wh:idx:' .. webhookId)
    redis.call('ZADD', idx, now, id)
    redis.call('ZREMRANGEBYRANK', idx, 0, -${LIST_KEEP + 1})
    if redis.call('RPUSH', chain, id) == 1 then redis.call('ZADD', base .. ':wh:due', now, id) end
  end
  acked[#acked + 1] = eventId
end
if #acked > 0 then redis.call('XACK', stream, group, unpack(acked)) end
return #acked
`;

/** ARGV: base, now, leaseUntil, limit. Takes due deliveries (leased: if the sender dies they come back), 7 fields each. */
const WH_TAKE = `${SHARED}
local now, leaseUntil, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', base .. ':wh:due', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  redis.call('ZADD', base .. ':wh:due', leaseUntil, id)
  local h = redis.call('HMGET', dkey(id), 'webhookId', 'url', 'body', 'eventType', 'createdAt', 'state')
  if h[6] == 'pending' then
    out[#out + 1] = id
    for k = 1, 5 do out[#out + 1] = h[k] or '' end
    out[#out + 1] = redis.call('LLEN', dkey(id) .. ':attempts')
  else
    redis.call('ZREM', base .. ':wh:due', id)
  end
end
return out
`;

/** ARGV: base, id, now, ok (1|0), attempt JSON|'' (none made), nextAt|'' (none: failed for good). */
const WH_RESULT = `${SHARED}
local id, now, ok, attempt, nextAt = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('HGET', dkey(id), 'state') ~= 'pending' then return 0 end
if attempt ~= '' then redis.call('RPUSH', dkey(id) .. ':attempts', attempt) end
if ok == '1' then
  redis.call('HSET', dkey(id), 'state', 'delivered', 'nextAt', '')
  finish(id, now)
elseif nextAt ~= '' then
  redis.call('HSET', dkey(id), 'nextAt', nextAt)
  redis.call('ZADD', base .. ':wh:due', nextAt, id)
else
  redis.call('HSET', dkey(id), 'state', 'failed', 'nextAt', '')
  finish(id, now)
end
return 1
`;

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
    return `${this.keys.base}:wh:subs`;
  }

  /** Bumped with every change of the subscriptions, so readers that cache them know when to read again. */
  private get subsVersionKey(): string {
    return `${this.keys.base}:wh:subs:version`;
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
    const args: (string | number)[] = [this.keys.base, now, stream, group];
    for (const e of batch) {
      args.push(e.eventId, e.deliveries.length);
      for (const d of e.deliveries) args.push(d.id, d.webhookId, d.url, d.eventType, d.jobId ?? '', d.body);
    }
    await this.redis.droverWhEnqueue(...args);
  }

  async takeDue(limit: number, leaseMs: number, now = Date.now()): Promise<DueDelivery[]> {
    const flat = await this.redis.droverWhTake(this.keys.base, now, now + leaseMs, limit);
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
    await this.redis.droverWhResult(this.keys.base, id, now, ok ? 1 : 0, attempt ? JSON.stringify(attempt) : '', nextAt ?? '');
  }

  /** Deliveries of a webhook (or of a job's callbacks), newest first. */
  async deliveries(owner: { webhookId: string } | { jobId: string }, limit: number, before?: number): Promise<Delivery[]> {
    const idx = 'webhookId' in owner ? `${this.keys.base}:wh:idx:${owner.webhookId}` : `${this.keys.base}:wh:idx:job:${owner.jobId}`;
    const ids = await this.redis.zrevrangebyscore(idx, before !== undefined ? `(${before}` : '+inf', '-inf', 'LIMIT', 0, limit);
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(`${this.keys.base}:wh:d:${id}`).lrange(`${this.keys.base}:wh:d:${id}:attempts`, 0, -1);
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
