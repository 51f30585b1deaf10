import type { Redis } from 'ioredis';

/** Requests counted in one window of a budget, and when the window ends. */
export interface WindowCount {
  count: number;
  /** ms until the window ends and the count starts again. */
  resetMs: number;
}

/** Keys this process counts itself while Redis cannot; past this, windows that ended are dropped, then the oldest. */
const MAX_LOCAL_KEYS = 10_000;

/**
 * Fixed windows (one minute by default) counted in Redis, so every API replica draws on the same budget: the
 * counter is created with its expiry (SET NX PX) and incremented in one MULTI. When Redis cannot count (unreachable,
 * or full: INCR needs memory), a counter in this process takes over, so a budget then holds per replica rather than
 * not at all.
 */
export class WindowCounter {
  private readonly local = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly redis: Redis,
    /** Key prefix, inside the deployment's hash tag. */
    private readonly prefix: string,
    private readonly windowMs = 60_000,
  ) {}

  /**
   * Counts one request against `take` (when given) and reads the count of `peek` (when given), in one round trip.
   * `peek` is a budget this request does not spend but must respect (an address's failed authentications).
   */
  async hit(take: string | undefined, peek: string | undefined, now = Date.now()): Promise<{ taken?: WindowCount; peeked?: WindowCount }> {
    if (take === undefined && peek === undefined) return {};
    try {
      return await this.hitRedis(take, peek);
    } catch {
      return this.hitLocal(take, peek, now);
    }
  }

  private async hitRedis(take: string | undefined, peek: string | undefined): Promise<{ taken?: WindowCount; peeked?: WindowCount }> {
    const multi = this.redis.multi();
    if (peek !== undefined) multi.get(this.key(peek)).pttl(this.key(peek));
    if (take !== undefined) multi.set(this.key(take), 0, 'PX', this.windowMs, 'NX').incr(this.key(take)).pttl(this.key(take));
    const rows = await multi.exec();
    if (!rows) throw new Error('transaction aborted');
    for (const [err] of rows) if (err) throw err;
    const values = rows.map(([, v]) => v);
    const out: { taken?: WindowCount; peeked?: WindowCount } = {};
    let i = 0;
    if (peek !== undefined) {
      out.peeked = { count: Number(values[i] ?? 0), resetMs: this.ttl(values[i + 1]) };
      i += 2;
    }
    if (take !== undefined) out.taken = { count: Number(values[i + 1]), resetMs: this.ttl(values[i + 2]) };
    return out;
  }

  private hitLocal(take: string | undefined, peek: string | undefined, now: number): { taken?: WindowCount; peeked?: WindowCount } {
    const out: { taken?: WindowCount; peeked?: WindowCount } = {};
    if (peek !== undefined) {
      const w = this.local.get(peek);
      out.peeked = w && w.resetAt > now ? { count: w.count, resetMs: w.resetAt - now } : { count: 0, resetMs: this.windowMs };
    }
    if (take !== undefined) {
      let w = this.local.get(take);
      if (!w || w.resetAt <= now) {
        this.makeRoom(now);
        w = { count: 0, resetAt: now + this.windowMs };
        this.local.set(take, w);
      }
      w.count++;
      out.taken = { count: w.count, resetMs: w.resetAt - now };
    }
    return out;
  }

  private makeRoom(now: number): void {
    if (this.local.size < MAX_LOCAL_KEYS) return;
    for (const [k, w] of this.local) if (w.resetAt <= now) this.local.delete(k);
    // Still full: the oldest windows go (Map order is insertion order).
    for (const k of this.local.keys()) {
      if (this.local.size < MAX_LOCAL_KEYS) break;
      this.local.delete(k);
    }
  }

  private key(name: string): string {
    return `${this.prefix}:${name}`;
  }

  /** PTTL answers -2 (no key) or -1 (no expiry, which SET PX never leaves): a fresh window either way. */
  private ttl(v: unknown): number {
    const ms = Number(v);
    return ms > 0 ? ms : this.windowMs;
  }
}
