import { generateWebhookSecret, webhookSecretProblem } from '@drover/core';
import { ensureSecretFile } from './secret-file.js';

/**
 * The all-in-one's key for signing job callbacks when DROVER_CALLBACK_SECRET is not set: generated once in the
 * Standard Webhooks form (`whsec_<base64>`, so stock verifiers take it as it is) into `<dataDir>/callback-secret`
 * (0600), beside the admin token, and reused on later starts. Callbacks are never sent unsigned.
 */
export function ensureCallbackSecret(dataDir: string): { secret: string; path: string; created: boolean } {
  const { value, path, created } = ensureSecretFile(dataDir, 'callback-secret', generateWebhookSecret);
  const problem = webhookSecretProblem(value);
  if (problem) throw new Error(`${path}: the callback secret ${problem}; fix it or delete the file to have a new one made`);
  return { secret: value, path, created };
}
