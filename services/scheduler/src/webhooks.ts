import {
  EventGroupReader, coerceError, deliveryCause, eventFromEntry, matches, newJobId, signatureHeaders,
  type DroverEvent, type DroverMetrics, type EventStore, type Logger, type DueDelivery, type NewDelivery, type OutboundPolicy, type Webhook, type WebhookStore,
} from '@drover/core';
import { DeliveryClient } from './delivery-http.js';

const GROUP = 'webhooks';
/** Terminal job events a job's own callbackUrl receives (Coyotes' result callback). */
const CALLBACK_EVENTS = new Set(['job.succeeded', 'job.failed', 'job.timed_out', 'job.cancelled', 'job.lost', 'job.expired']);
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
  /** Signs job callbacks (subscriptions have their own secrets): every delivery is signed. */
  callbackSecret: string;
  /** What deliveries may connect to (DROVER_OUTBOUND_ALLOW and the resolver). */
  outbound: OutboundPolicy;
}

/**
 * Webhook delivery, in the scheduler. Events are read through a consumer group on the events stream, so each is
 * handled by one scheduler replica and none is lost across a restart (unacknowledged events are read again or
 * taken over). Each matching subscription (and a job's callbackUrl) gets a delivery record; deliveries of one
 * webhook and job go in order; each is POSTed, signed, retried with exponential backoff until maxAgeMs, and every
 * attempt is recorded as an outcome class. Sending runs beside the scheduler's tick, never inside it, and never in a
 * runner. Targets the outbound policy refuses are given up at once: asking again would not change the answer.
 */
export class WebhookDeliverer {
  private subs: Webhook[] = [];
  private subsVersion: string | undefined;
  private readonly reader: EventGroupReader;
  private inFlight = 0;
  private sending: Promise<void>[] = [];
  private loop: Promise<void> | undefined;
  private stopped = false;
  private readonly client: DeliveryClient;

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
    this.client = new DeliveryClient(opts.outbound, SEND_TIMEOUT_MS);
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
    this.client.close();
  }

  private async subscriptions(): Promise<Webhook[]> {
    // One GET per batch: a subscription created just before a job ran must see that job's events.
    const version = await this.hooks.subscriptionsVersion();
    if (version !== this.subsVersion) {
      this.subs = (await this.hooks.list()).filter((h) => h.enabled);
      this.subsVersion = version;
    }
    return this.subs;
  }

  /** Reads new events (and, first, this consumer's unacknowledged ones) and records their deliveries. Returns how many. */
  async intake(now = Date.now()): Promise<number> {
    const entries = await this.reader.next(now);
    if (entries.length === 0) return 0;
    const subs = await this.subscriptions();
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
    for (const e of ended) pipe.hget(this.events.keys.job(e.jobId!), 'callbackUrl');
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
    const subs = new Map((await this.subscriptions()).map((h) => [h.id, h]));
    for (const d of due) {
      this.inFlight++;
      // No secret: the subscription was deleted or disabled since the delivery was recorded.
      const secret = d.webhookId === 'callback' ? this.opts.callbackSecret : subs.get(d.webhookId)?.secret;
      const p = this.send(d, secret)
        .catch((err: unknown) => this.log.warn({ err: coerceError(err), delivery: d.id }, 'recording a webhook attempt failed'))
        .finally(() => {
          this.inFlight--;
          this.sending = this.sending.filter((x) => x !== p);
        });
      this.sending.push(p);
    }
    return due.length;
  }

  private async send(d: DueDelivery, secret: string | undefined): Promise<void> {
    const started = Date.now();
    const at = new Date(started).toISOString();
    if (secret === undefined) {
      // Nothing was attempted: the delivery just ends (failed), without an attempt to show.
      await this.hooks.result(d.id, false, null, null);
      this.metrics?.webhookDeliveries.inc({ outcome: 'given_up' });
      this.log.info({ delivery: d.id, webhookId: d.webhookId }, 'webhook delivery dropped: the webhook was deleted or disabled');
      return;
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'drover-webhooks',
      'drover-event': d.eventType,
      'drover-delivery': d.id,
      ...signatureHeaders(secret, { id: d.id, timestamp: Math.floor(started / 1000), body: d.body }),
    };
    const result = await this.client.post(d.url, headers, d.body);
    const ok = result.outcome === 'delivered';
    const delay = Math.min(this.opts.retryBaseMs * 2 ** d.attempts, 300_000);
    const giveUp = ok || result.outcome === 'refused_by_policy' || Date.now() + delay - d.createdAt > this.opts.maxAgeMs;
    const next = giveUp ? null : Date.now() + delay;
    const cause = deliveryCause(result.outcome, result.status, result.code);
    await this.hooks.result(d.id, ok, { at, outcome: result.outcome, status: result.status, cause, retryAt: next === null ? null : new Date(next).toISOString() }, next);
    this.metrics?.webhookDeliveries.inc({ outcome: ok ? 'delivered' : next === null ? 'given_up' : 'failed' });
    // The operator's log keeps the network detail the API does not show (the host only: a URL may carry a token).
    const where = { delivery: d.id, webhookId: d.webhookId, host: hostOf(d.url), outcome: result.outcome, status: result.status, error: result.error };
    if (result.outcome === 'refused_by_policy') this.log.warn(where, 'webhook delivery refused by the outbound policy (DROVER_OUTBOUND_ALLOW)');
    else if (!ok && next === null) this.log.warn(where, 'webhook delivery given up');
    else if (!ok) this.log.debug(where, 'webhook delivery failed; will retry');
  }
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '(not a URL)';
  }
};
