import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** Marks a sealed value; the version leaves room for another algorithm or key scheme later. */
const PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** True for a value `EnvCipher.seal` produced (whatever key sealed it). */
export function isSealed(value: string): boolean {
  return value.startsWith(PREFIX);
}

/**
 * A 32-byte key for `DROVER_ENV_KEY`: 64 hex digits or base64 (standard or url-safe) of 32 bytes. Returns the key,
 * or a problem in words for the configuration report.
 */
export function parseEnvKey(text: string): Buffer | string {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length === 32) return key;
  }
  return 'DROVER_ENV_KEY must be 32 bytes, as 64 hex digits or base64 (generate one with: openssl rand -base64 32)';
}

/**
 * Env values at rest: each value AES-256-GCM sealed on its own (random 96-bit IV, the variable's name as
 * associated data, so a sealed value cannot be moved to another name). The API and the scheduler seal what they
 * store; only a runner opens, right before it starts the command. Sealing is idempotent: values sealed already
 * (copied from a stored spec, a schedule's template) stay as they are.
 */
export class EnvCipher {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('EnvCipher needs a 32-byte key');
  }

  seal(env: Readonly<Record<string, string>>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(env)) out[name] = isSealed(value) ? value : this.sealOne(name, value);
    return out;
  }

  /** Throws, naming the variable, when a value was sealed with another key or altered. */
  open(env: Readonly<Record<string, string>>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(env)) out[name] = isSealed(value) ? this.openOne(name, value) : value;
    return out;
  }

  private sealOne(name: string, value: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(name));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  private openOne(name: string, sealed: string): string {
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw sealedError(name);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(name));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw sealedError(name);
    }
  }
}

// A runner-side failure (the job fails with this message), not an API answer.
const sealedError = (name: string): Error =>
  new Error(`env ${name} is sealed with a key this runner does not have (DROVER_ENV_KEY differs or is unset)`);

/** A spec or template with its env sealed (unchanged without a cipher or without env). */
export function sealEnvOf<T extends { env?: Record<string, string> | undefined }>(cipher: EnvCipher | undefined, spec: T): T {
  return cipher && spec.env && Object.keys(spec.env).length > 0 ? { ...spec, env: cipher.seal(spec.env) } : spec;
}

/**
 * What a runner does with a spec's env: open sealed values with its key; without a key, a sealed value is an
 * error (the job fails saying so) rather than the ciphertext reaching the command.
 */
export function openEnv(cipher: EnvCipher | undefined, env: Readonly<Record<string, string>>): Record<string, string> {
  if (cipher) return cipher.open(env);
  const sealed = Object.entries(env).find(([, v]) => isSealed(v));
  if (sealed) throw sealedError(sealed[0]);
  return { ...env };
}
