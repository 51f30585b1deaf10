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
  /** Why it did not succeed, from a fixed vocabulary (deliveryCause): no address, URL or message text. */
  cause?: string | null;
}

/** Node's network and TLS error codes, as a delivery's cause says them. */
const CAUSES: Record<string, string> = {
  ECONNREFUSED: 'ECONNREFUSED: connection refused',
  ECONNRESET: 'ECONNRESET: connection reset',
  EPIPE: 'ECONNRESET: connection reset',
  ENOTFOUND: 'ENOTFOUND: the host name does not resolve',
  EAI_AGAIN: 'EAI_AGAIN: DNS lookup failed for now',
  ETIMEDOUT: 'timeout: no answer in time',
  ABORT_ERR: 'timeout: no answer in time',
  TimeoutError: 'timeout: no answer in time',
  AbortError: 'timeout: no answer in time',
  EHOSTUNREACH: 'EHOSTUNREACH: no route to the host',
  ENETUNREACH: 'ENETUNREACH: network unreachable',
  CERT_HAS_EXPIRED: 'certificate has expired',
  CERT_NOT_YET_VALID: 'certificate is not yet valid',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in the chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate not trusted (unable to verify)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate not trusted (unknown issuer)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'certificate is for another host name',
  EPROTO: 'TLS handshake failed',
  HPE_INVALID_CONSTANT: 'the answer is not HTTP',
};

/**
 * Why an attempt failed, as shown to whoever may read the delivery: `HTTP 503` for an answer, a known network or TLS
 * cause by its code, else only its code's class. Never an address, URL or the error's text (no probe of the network).
 */
export function deliveryCause(outcome: AttemptOutcome, status: number | null, code: string | undefined): string | null {
  if (outcome === 'delivered') return null;
  if (outcome === 'refused_by_policy') return 'refused by the outbound policy (DROVER_OUTBOUND_ALLOW)';
  if (status !== null) return `HTTP ${status}`;
  if (code && CAUSES[code]) return CAUSES[code];
  if (code && /^ERR_SSL_|^ERR_TLS_/.test(code)) return 'TLS error';
  return 'network error';
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

/** A delivery as the API shows it: no URL (a callbackUrl is never returned), never a network error's text. */
export interface DeliveryView extends Omit<Delivery, 'url' | 'attempts'> {
  attempts: { at: string; outcome: AttemptOutcome; statusClass: '2xx' | '3xx' | '4xx' | '5xx' | null; status?: number | null; cause?: string | null; retryAt: string | null }[];
}

/**
 * `detailed` (a webhook's deliveries, for the admins who set its URL): each attempt's HTTP status and cause too.
 * Without it (a job's callback deliveries, which submitters read) outcome classes only: the scheduler is no port
 * scanner for whoever may submit a callbackUrl.
 */
export function deliveryView({ url: _url, attempts, ...rest }: Delivery, detailed = false): DeliveryView {
  return {
    ...rest,
    attempts: attempts.map((a) => ({
      at: a.at,
      outcome: a.outcome,
      statusClass: a.status !== null && a.status >= 200 && a.status <= 599 ? (`${Math.floor(a.status / 100)}xx` as DeliveryView['attempts'][number]['statusClass']) : null,
      ...(detailed ? { status: a.status, cause: a.cause ?? deliveryCause(a.outcome, a.status, undefined) } : {}),
      retryAt: a.retryAt ?? null,
    })),
  };
}
