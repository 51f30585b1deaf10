import { randomUUID } from 'node:crypto';
import { DroverError, coerceError, type Logger } from '@drover/core';
import type { FastifyReply } from 'fastify';
import type { Redis, Result } from 'ioredis';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    droverStreamSlot(key: string, now: number, until: number, max: number, member: string, ttlMs: number): Result<number, Context>;
  }
}

/** How long a slot outlives its last refresh: an API instance that dies frees its slots within this. */
const SLOT_TTL_MS = 30_000;
const REFRESH_MS = 10_000;

/**
 * KEYS[1]: the caller's slots (a sorted set of stream ids scored by when each lapses). ARGV: now, until, max, member,
 * ttlMs. Drops lapsed slots, then takes one if fewer than max are held. Returns 1 (taken) or 0 (all in use).
 */
const TAKE_SLOT = `
local key, now, untilMs, max, member, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= max then return 0 end
redis.call('ZADD', key, untilMs, member)
redis.call('PEXPIRE', key, ttl)
return 1
`;

/**
 * Caps the SSE streams (events, log follow) one caller holds open, across API replicas: each open stream holds a
 * slot in Redis that this instance refreshes while the stream lasts and gives back when it closes, however it
 * closes (the client hanging up included). Slots of an instance that died lapse after SLOT_TTL_MS.
 */
export class StreamSlots {
  private readonly instance = randomUUID();
  private seq = 0;
  /** Slots held by streams of this instance: member -> key. */
  private readonly held = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    /** Key prefix, inside the deployment's hash tag. */
    private readonly prefix: string,
    private readonly maxPerCaller: number,
    private readonly log: Logger,
  ) {
    const command: string = 'droverStreamSlot';
    if (!(command in redis)) redis.defineCommand(command, { numberOfKeys: 1, lua: TAKE_SLOT });
  }

  /**
   * Takes a slot for the stream `reply` is about to serve, or throws RATE_LIMITED (429) when the caller holds all
   * of theirs. The slot is given back when the stream closes.
   */
  async open(caller: string, reply: FastifyReply): Promise<void> {
    const key = `${this.prefix}:${caller}`;
    const member = `${this.instance}:${++this.seq}`;
    const now = Date.now();
    const taken = await this.redis.droverStreamSlot(key, now, now + SLOT_TTL_MS, this.maxPerCaller, member, SLOT_TTL_MS);
    if (taken !== 1) {
      throw new DroverError(
        'RATE_LIMITED',
        `this token already has ${this.maxPerCaller} event or log streams open (DROVER_MAX_STREAMS_PER_TOKEN); close one before opening another`,
        { limit: this.maxPerCaller },
      );
    }
    this.held.set(member, key);
    this.timer ??= setInterval(() => void this.refresh(), REFRESH_MS).unref();
    reply.sse.onClose(() => this.release(member));
    // Gone while the slot was being taken: the close callbacks have run already.
    if (!reply.sse.isConnected) this.release(member);
  }

  private release(member: string): void {
    const key = this.held.get(member);
    if (key === undefined) return;
    this.held.delete(member);
    if (this.held.size === 0) this.stopRefreshing();
    // If this fails the slot lapses on its own.
    this.redis.zrem(key, member).catch((err: unknown) => this.log.debug({ err: coerceError(err) }, 'giving back a stream slot failed'));
  }

  private async refresh(): Promise<void> {
    if (this.held.size === 0) return;
    const until = Date.now() + SLOT_TTL_MS;
    const pipe = this.redis.pipeline();
    for (const [member, key] of this.held) pipe.zadd(key, 'XX', until, member).pexpire(key, SLOT_TTL_MS);
    await pipe.exec().catch((err: unknown) => this.log.warn({ err: coerceError(err) }, 'refreshing stream slots failed'));
  }

  private stopRefreshing(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops refreshing; the streams themselves are ended by the events hub closing. */
  close(): void {
    this.stopRefreshing();
  }
}
