import { Type, type Static } from 'typebox';
import { OUTBOUND_URL } from '../outbound.js';
import { QueueName } from './job-spec.js';

const EventPattern = Type.String({ pattern: '^[a-z]+(\\.[a-z_]+|\\.\\*)$', description: 'An event type, or a family such as `job.*`.' });

/** A global webhook subscription: POST /v1/webhooks. */
export const WebhookInput = Type.Object(
  {
    url: Type.String({
      format: 'uri',
      pattern: '^https?://',
      maxLength: 2048,
      [OUTBOUND_URL]: true,
      description: 'Receives each matching event as a signed JSON POST. Must reach public addresses only, unless DROVER_OUTBOUND_ALLOW lists it.',
    }),
    events: Type.Optional(Type.Array(EventPattern, { minItems: 1, maxItems: 32, uniqueItems: true, description: 'Default: every event.' })),
    queues: Type.Optional(Type.Array(QueueName, { minItems: 1, maxItems: 64, uniqueItems: true, description: 'Only events of these queues.' })),
    secret: Type.Optional(Type.String({
      minLength: 16,
      maxLength: 256,
      description: 'HMAC key (`whsec_<base64>` is decoded as Standard Webhooks does); generated in that form, and shown once, if absent.',
    })),
    enabled: Type.Optional(Type.Boolean()),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type WebhookInput = Static<typeof WebhookInput>;

export const WebhookUpdate = Type.Partial(Type.Omit(WebhookInput, ['secret']), { additionalProperties: false });
export type WebhookUpdate = Static<typeof WebhookUpdate>;

/** What is stored; the secret is never returned after creation. */
export interface Webhook {
  id: string;
  url: string;
  events: string[];
  queues: string[];
  secret: string;
  enabled: boolean;
  description: string;
  createdAt: string;
}

/**
 * How one attempt went: `delivered` (2xx), `rejected` (the receiver answered something else), `unreachable` (no
 * answer: DNS, connection, TLS, timeout, all alike), `refused_by_policy` (the target is not an address Drover may
 * call). Nothing finer: which network error it was would tell a submitter which ports are open where.
 */
export type AttemptOutcome = 'delivered' | 'rejected' | 'unreachable' | 'refused_by_policy';

export interface DeliveryAttempt {
  at: string;
  outcome: AttemptOutcome;
  /** The receiver's HTTP status, when it answered. */
  status: number | null;
  /** When the next attempt was planned for (the backoff), as the scheduler decided; null: none (delivered or given up). */
  retryAt?: string | null;
}

/** A delivery as stored; the API shows a DeliveryView of it. */
export interface Delivery {
  id: string;
  /** The subscription, or `callback` for a job's own callbackUrl. */
  webhookId: string;
  url: string;
  eventId: string;
  eventType: string;
  jobId: string | null;
  state: 'pending' | 'delivered' | 'failed';
  attempts: DeliveryAttempt[];
  createdAt: string;
  nextAttemptAt: string | null;
}

/** A delivery as the API shows it: no URL (a callbackUrl is never returned), attempts as outcome classes only. */
export interface DeliveryView extends Omit<Delivery, 'url' | 'attempts'> {
  attempts: { at: string; outcome: AttemptOutcome; statusClass: '2xx' | '3xx' | '4xx' | '5xx' | null; retryAt: string | null }[];
}

export function deliveryView({ url: _url, attempts, ...rest }: Delivery): DeliveryView {
  return {
    ...rest,
    attempts: attempts.map((a) => ({
      at: a.at,
      outcome: a.outcome,
      statusClass: a.status !== null && a.status >= 200 && a.status <= 599 ? (`${Math.floor(a.status / 100)}xx` as DeliveryView['attempts'][number]['statusClass']) : null,
      retryAt: a.retryAt ?? null,
    })),
  };
}
