// A stand-in for a test file (test/suite.process-groups.test.ts): starts a shell that leaves two sleeps in its
// process group, writes keys under a test prefix of its own, writes "<pids>\n<prefix>" to argv[2], then waits to
// be killed.
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { spawnTracked } from './process-groups.js';
import { REDIS_URL, testPrefix } from './stack.js';

const out = process.argv[2]!;
const prefix = testPrefix();
const redis = new Redis(REDIS_URL);
await redis.set(`{${prefix}}:job:1`, 'x');
await redis.sadd(`{${prefix}}:queues`, 'default');
redis.disconnect();
const child = spawnTracked('/bin/sh', ['-c', 'sleep 300 & a=$!; sleep 301 & b=$!; echo "$$ $a $b"; wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout!.once('data', (c: Buffer) => {
  writeFileSync(out, `${c.toString().trim()}\n${prefix}`);
  process.stdout.write('ready\n');
});
setInterval(() => undefined, 60_000);
