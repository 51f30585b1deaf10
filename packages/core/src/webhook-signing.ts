import { createHmac, randomBytes } from 'node:crypto';

/**
 * Signatures of Drover's outbound POSTs (webhook deliveries and job callbacks), in the Standard Webhooks format
 * (https://www.standardwebhooks.com) so receivers can use stock verifiers, plus Drover's older header for
 * receivers written against it. docs/webhooks.md shows how to verify both.
 */

const PREFIX = 'whsec_';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Shortest key a `whsec_` secret may decode to. */
const MIN_KEY_BYTES = 16;

/** A new secret in the Standard Webhooks form: `whsec_` and the base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `${PREFIX}${randomBytes(32).toString('base64')}`;
}

/**
 * The HMAC key of a secret: a `whsec_<base64>` secret is the bytes its base64 decodes to (what Standard Webhooks
 * libraries do with it), any other secret its UTF-8 text. Null for a `whsec_` secret that is not valid base64 or
 * holds fewer than 16 bytes.
 */
export function webhookKey(secret: string): Buffer | null {
  if (!secret.startsWith(PREFIX)) return Buffer.from(secret, 'utf8');
  const b64 = secret.slice(PREFIX.length);
  if (!BASE64.test(b64)) return null;
  const key = Buffer.from(b64, 'base64');
  // Buffer.from skips what it cannot read: only a secret that survives the round trip is what the operator meant.
  const unpadded = (s: string): string => s.replace(/=+$/, '');
  return key.length >= MIN_KEY_BYTES && unpadded(key.toString('base64')) === unpadded(b64) ? key : null;
}

/** Why `secret` cannot sign, or null. */
export function webhookSecretProblem(secret: string): string | null {
  if (secret.length < 16) return 'must be at least 16 characters';
  return webhookKey(secret) ? null : `a secret starting with ${PREFIX} must continue with base64 of at least ${MIN_KEY_BYTES} bytes`;
}

export interface SignedMessage {
  /** Unique per delivery and the same on each retry (receivers deduplicate on it). */
  id: string;
  /** Unix seconds of this attempt. */
  timestamp: number;
  body: string;
}

/**
 * The signing headers of one attempt: `webhook-id`, `webhook-timestamp` and
 * `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` (Standard Webhooks), and
 * `drover-signature: v1=<hex HMAC-SHA256(secret text, "<timestamp>.<body>")>` with `drover-timestamp` (Drover's own).
 */
export function signatureHeaders(secret: string, msg: SignedMessage): Record<string, string> {
  // Secrets are checked when set; one stored before that check, malformed, still signs (as its text) rather than
  // leaving its deliveries stuck.
  const key = webhookKey(secret) ?? Buffer.from(secret, 'utf8');
  const ts = String(msg.timestamp);
  const standard = createHmac('sha256', key).update(`${msg.id}.${ts}.${msg.body}`).digest('base64');
  const legacy = createHmac('sha256', secret).update(`${ts}.${msg.body}`).digest('hex');
  return {
    'webhook-id': msg.id,
    'webhook-timestamp': ts,
    'webhook-signature': `v1,${standard}`,
    'drover-timestamp': ts,
    'drover-signature': `v1=${legacy}`,
  };
}
