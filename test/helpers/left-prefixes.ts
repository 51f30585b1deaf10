// `npm test`'s teardown for keys: deletes the keys and RabbitMQ queues of every prefix still registered in the
// directory given (test/helpers/prefixes.ts), that is of test files killed before their after-hooks ran, and prints
// one line saying what it deleted. A Redis that is gone (a test's own, stopped with it) is skipped.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REGISTRATION_LOG, readRegistered } from './prefixes.js';
import { deletePrefix } from './stack.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: left-prefixes.ts <registry dir>');
const done: string[] = [];
const skipped: string[] = [];
for (const name of readdirSync(dir)) {
  if (name === REGISTRATION_LOG) continue;
  const entry = readRegistered(dir, name);
  if (!entry) continue;
  await deletePrefix(entry.prefix, entry.redisUrl, entry.amqpUrl, { connectTimeoutMs: 2000 }).then(
    () => {
      rmSync(join(dir, name), { force: true });
      done.push(entry.prefix);
    },
    (err: unknown) => skipped.push(`${entry.prefix} (${err instanceof Error ? err.message : String(err)})`),
  );
}
const parts = [];
if (done.length > 0) parts.push(`deleted the keys of ${done.length} prefix(es) killed test files left: ${done.join(', ')}`);
if (skipped.length > 0) parts.push(`could not reach the Redis of ${skipped.join(', ')}`);
process.stdout.write(`${parts.join('; ')}\n`);
