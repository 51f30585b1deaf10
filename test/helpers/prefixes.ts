import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Every key prefix a test creates is registered, with the Redis and RabbitMQ it lives on, in the directory
 * DROVER_TEST_PREFIXES names (one file per prefix), and unregistered once its keys are deleted. `npm test` deletes
 * what is still registered after each phase (test/helpers/left-prefixes.ts): a test file killed by its timeout
 * leaves no keys behind. Outside `npm test` nothing is written.
 */
const DIR = process.env.DROVER_TEST_PREFIXES;

export interface RegisteredPrefix {
  prefix: string;
  redisUrl: string;
  amqpUrl: string;
}

/** Every registration is also appended to this file of the directory, kept after deletion: where tests worked. */
export const REGISTRATION_LOG = 'registrations.jsonl';

export function registerPrefix(entry: RegisteredPrefix): void {
  if (!DIR) return;
  writeFileSync(join(DIR, entry.prefix), JSON.stringify(entry));
  appendFileSync(join(DIR, REGISTRATION_LOG), `${JSON.stringify(entry)}\n`);
}

export function unregisterPrefix(prefix: string): void {
  if (DIR) rmSync(join(DIR, prefix), { force: true });
}

export function readRegistered(dir: string, name: string): RegisteredPrefix | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, name), 'utf8')) as RegisteredPrefix;
  } catch {
    return undefined; // removed meanwhile
  }
}
