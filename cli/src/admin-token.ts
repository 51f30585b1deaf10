import { randomBytes } from 'node:crypto';
import { ensureSecretFile } from './secret-file.js';

/**
 * The all-in-one's token when none is configured: generated once, kept in `<dataDir>/admin-token` (0600) so it
 * survives restarts, and printed so the user can copy it. Drover never runs without authentication.
 */
export function ensureAdminToken(dataDir: string): { token: string; path: string; created: boolean } {
  const { value, path, created } = ensureSecretFile(dataDir, 'admin-token', () => randomBytes(32).toString('base64url'));
  return { token: value, path, created };
}
