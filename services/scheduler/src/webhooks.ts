import { createHmac } from 'node:crypto';
import {
  EventGroupReader, coerceError, eventFromEntry, matches, newJobId, type DroverEvent, type DroverMetrics, type EventStore, type Logger, type DueDelivery, type NewDelivery, type Webhook, type WebhookStore,
} from '@drover/core';

const GROUP = 'webhooks';
/** Terminal job events a job's own callbackUrl receives (Coyotes' result callback). */
const CALLBACK_EVENTS = new Set(['job.succeeded', 'job.failed', 'job.timed_out', 'job.cancelled', 'job.lost']);
const READ_BATCH = 500;
const MAX_IN_FLIGHT = 32;
const SEND_TIMEOUT_MS = 10_000;
/** Events left unacknowledged this long by a consumer (a scheduler that died) are taken over. */
const CLAIM_IDLE_MS = 30_000;

export interface WebhookOptions {
  /** First retry delay; doubles per attempt up to five minutes. */
  retryBaseMs: number;
  /** A delivery still failing this long after its event is given up. */
  maxAgeMs: number;
  /** HMAC key for job callbacks; unsigned when absent. */
  callbackSecret: string | undefined;
}

/** `Drover-Signature: v1=<hex>`: HMAC-SHA256 over `<timestamp>.<body>`, timestamp in `Drover-Timestamp` (Unix seconds). */
export function signature(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Webhook delivery, in the scheduler. Events are read through a consumer group on the events stream, so each is
 * handled by one scheduler replica and none is lost across a restart (unacknowledged events are read again or
 * taken over). Each matching subscription (and a job's callbackUrl) gets a delivery record; deliveries of one
 * webhook and job go in order; each is POSTed, signed, retried with exponential backoff until maxAgeMs, and every
 * attempt is recorded. Sending runs beside the scheduler's tick, never inside it, and never in a runner.
 */
export class WebhookDeliverer {
  private subs: Webhook[] = [];
  private subsAt = 0;
  private readonly reader: EventGroupReader;
  private inFlight = 0;
  private sending: Promise<void>[] = [];
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly events: EventStore,
    private readonly hooks: WebhookStore,
    consumer: string,
    private readonly opts: WebhookOptions,
    private readonly log: Logger,
    private readonly metrics?: DroverMetrics,
  ) {
    // From the group's creation on: a new install does not replay history to its first subscribers.
    this.reader = new EventGroupReader(events, { group: GROUP, consumer, startAt: '$', claimIdleMs: CLAIM_IDLE_MS, batch: READ_BATCH });
  }

  /** Joins the event stream's consumer group before the scheduler reports started. */
  prepare(): Promise<void> {
    return this.reader.ensureGroup();
  }

  /** Sends while anything is due (as many at once as MAX_IN_FLIGHT allows); looks again every 50 ms when idle. */
  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        if (this.inFlight >= MAX_IN_FLIGHT) {
          await Promise.race(this.sending);
          continue;
        }
        const took = await this.sendDue().catch((err: unknown) => {
          this.log.warn({ err: coerceError(err) }, 'webhook sending failed');
          return 0;
        });
        if (took === 0) await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.allSettled(this.sending);
  }

  private async subscriptions(now: number): Promise<Webhook[]> {
    if (now - this.subsAt > 1000) {
      this.subs = (await this.hooks.list()).filter((h) => h.enabled);
      this.subsAt = now;
    }
    return this.subs;
  }

  /** Reads new events (and, first, this consumer's unacknowledged ones) and records their deliveries. Returns how many. */
  async intake(now = Date.now()): Promise<number> {
    const entries = await this.reader.next(now);
    if (entries.length === 0) return 0;
    const subs = await this.subscriptions(now);
    const events = entries.map(([id, fields]) => eventFromEntry(id, fields));
    const callbacks = await this.callbackUrls(events);
    const batch = events.map((e) => ({ eventId: e.id, deliveries: this.deliveriesFor(e, subs, callbacks.get(e.id)).map((d) => ({ ...d, id: newJobId(now) })) }));
    await this.hooks.enqueue(this.events.key, GROUP, batch, now);
    return entries.length;
  }

  /** callbackUrl of the jobs whose terminal events are in the batch. */
  private async callbackUrls(events: DroverEvent[]): Promise<Map<string, string>> {
    const ended = events.filter((e) => e.jobId && CALLBACK_EVENTS.has(e.type));
    const out = new Map<string, string>();
    if (ended.length === 0) return out;
    const pipe = this.events.redis.pipeline();
    for (const e of ended) pipe.hget(`${this.events.keys.base}:job:${e.jobId}`, 'callbackUrl');
    const rows = (await pipe.exec()) ?? [];
    ended.forEach((e, i) => {
      const url = rows[i]?.[1];
      if (typeof url === 'string' && url) out.set(e.id, url);
    });
    return out;
  }

  private deliveriesFor(e: DroverEvent, subs: Webhook[], callbackUrl: string | undefined): NewDelivery[] {
    const body = (webhookId: string): string => JSON.stringify({ webhookId, event: e });
    const out: NewDelivery[] = [];
    for (const h of subs) {
      if (!matches(e, { types: h.events })) continue;
      if (h.queues.length > 0 && (e.queue === null || !h.queues.includes(e.queue))) continue;
      out.push({ webhookId: h.id, url: h.url, eventType: e.type, jobId: e.jobId, body: body(h.id) });
    }
    if (callbackUrl) out.push({ webhookId: 'callback', url: callbackUrl, eventType: e.type, jobId: e.jobId, body: body('callback') });
    return out;
  }

  /** Starts sending what is due, up to MAX_IN_FLIGHT at once; returns how many it started. */
  private async sendDue(now = Date.now()): Promise<number> {
    const free = MAX_IN_FLIGHT - this.inFlight;
    if (free <= 0) return 0;
    const due = await this.hooks.takeDue(free, SEND_TIMEOUT_MS + 5000, now);
    if (due.length === 0) return 0;
    const subs = new Map((await this.subscriptions(now)).map((h) => [h.id, h]));
    for (const d of due) {
      this.inFlight++;
      const p = this.send(d, d.webhookId === 'callback' ? this.opts.callbackSecret : subs.get(d.webhookId)?.secret, d.webhookId === 'callback' || subs.has(d.webhookId))
        .catch((err: unknown) => this.log.warn({ err: coerceError(err), delivery: d.id }, 'recording a webhook attempt failed'))
        .finally(() => {
          this.inFlight--;
          this.sending = this.sending.filter((x) => x !== p);
        });
      this.sending.push(p);
    }
    return due.length;
  }

  private async send(d: DueDelivery, secret: string | undefined, subscribed: boolean): Promise<void> {
    const started = Date.now();
    if (!subscribed) {
      await this.hooks.result(d.id, false, { at: new Date(started).toISOString(), status: null, error: 'the webhook was deleted or disabled', durationMs: 0 }, null);
      this.metrics?.webhookDeliveries.inc({ outcome: 'given_up' });
      return;
    }
    const timestamp = String(Math.floor(started / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'drover-webhooks',
      'drover-event': d.eventType,
      'drover-delivery': d.id,
      'drover-timestamp': timestamp,
    };
    if (secret) headers['drover-signature'] = signature(secret, timestamp, d.body);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(d.url, { method: 'POST', headers, body: d.body, redirect: 'manual', signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
      status = res.status;
      await res.body?.cancel();
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      error = coerceError(err).message;
    }
    const ok = error === null;
    const attempt = { at: new Date(started).toISOString(), status, error, durationMs: Date.now() - started };
    const delay = Math.min(this.opts.retryBaseMs * 2 ** d.attempts, 300_000);
    const next = ok || Date.now() + delay - d.createdAt > this.opts.maxAgeMs ? null : Date.now() + delay;
    await this.hooks.result(d.id, ok, attempt, next);
    this.metrics?.webhookDeliveries.inc({ outcome: ok ? 'delivered' : next === null ? 'given_up' : 'failed' });
    if (!ok && next === null) this.log.warn({ delivery: d.id, url: d.url, error }, 'webhook delivery given up');
  }
}
