import { Type, type Static } from 'typebox';
import { QueueName } from './job-spec.js';

const EventPattern = Type.String({ pattern: '^[a-z]+(\\.[a-z_]+|\\.\\*)$', description: 'An event type, or a family such as `job.*`.' });

/** A global webhook subscription: POST /v1/webhooks. */
export const WebhookInput = Type.Object(
  {
    url: Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2048, description: 'Receives each matching event as a signed JSON POST.' }),
    events: Type.Optional(Type.Array(EventPattern, { minItems: 1, maxItems: 32, uniqueItems: true, description: 'Default: every event.' })),
    queues: Type.Optional(Type.Array(QueueName, { minItems: 1, maxItems: 64, uniqueItems: true, description: 'Only events of these queues.' })),
    secret: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'HMAC key; generated (and shown once) if absent.' })),
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

export interface DeliveryAttempt {
  at: string;
  /** HTTP status, or null when no answer came (connection refused, timeout). */
  status: number | null;
  error: string | null;
  durationMs: number;
}

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
