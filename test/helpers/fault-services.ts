// The fault phase's own Redis and RabbitMQ, so that no fault test touches the shared ones (or a developer's own):
// `npm test` starts this script before the phase, reads one JSON line {"redisUrl","amqpUrl"} from its stdout, runs
// the phase with REDIS_URL and AMQP_URL pointing at them, and closes this script's stdin after it. Both servers
// live in temp dirs on free loopback ports, in process groups registered like every test process, so a killed
// run's teardown ends them too. Tests that restart a broker still start one of their own for that.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownRedis } from './own-redis.js';
import { startRabbitNode } from './own-rabbitmq.js';
import { freePort } from './processes.js';

const dir = mkdtempSync(join(tmpdir(), 'drover-fault-redis-'));
const redisPort = await freePort();
const redis = ownRedis(redisPort, dir, ['--appendonly', 'no']);
let closeRabbit: (() => Promise<void>) | undefined;

let closing = false;
async function close(code: number): Promise<never> {
  if (!closing) {
    closing = true;
    await closeRabbit?.().catch((err: unknown) => process.stderr.write(`fault services: ${String(err)}\n`));
    redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(code);
}
// The harness closes stdin when the phase is over, or by dying.
process.stdin.on('end', () => void close(0));
process.stdin.on('error', () => void close(0));
process.stdin.resume();

try {
  await redis.start();
  const rabbit = await startRabbitNode((c) => (closeRabbit = c));
  process.stdout.write(`${JSON.stringify({ redisUrl: `redis://127.0.0.1:${redisPort}`, amqpUrl: rabbit.url })}\n`);
} catch (err) {
  process.stderr.write(`fault services did not start: ${err instanceof Error ? err.stack : String(err)}\n`);
  await close(1);
}
