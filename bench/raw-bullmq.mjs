/**
 * Baseline (1): a bare BullMQ worker at concurrency 8 whose processor spawns /bin/true, in its own process.
 * Jobs are added before the clock starts; the clock runs from worker start until all are completed.
 * Prints one JSON line: {"jobs": N, "ms": elapsed}. Plain JavaScript so it runs on bare node, as the
 * compiled Drover services do: a TypeScript loader would grow its memory and so its fork() cost.
 */
import { spawn } from 'node:child_process';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const jobs = Number(process.env.BENCH_JOBS ?? 2000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const prefix = process.env.BENCH_PREFIX ?? '{bench}:raw';
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const connection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('raw', { connection, prefix });
for (let i = 0; i < jobs; i += 1000) {
  const n = Math.min(1000, jobs - i);
  await queue.addBulk(Array.from({ length: n }, () => ({ name: 'true', data: {}, opts: { removeOnComplete: true, removeOnFail: true } })));
}

const runTrue = () =>
  new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => resolve());
  });

let done = 0;
const start = performance.now();
const finished = new Promise((resolve) => {
  const worker = new Worker('raw', runTrue, { connection, prefix, concurrency });
  worker.on('completed', () => {
    if (++done === jobs) {
      const ms = performance.now() - start;
      process.stdout.write(`${JSON.stringify({ jobs, ms })}\n`);
      void worker.close().then(resolve);
    }
  });
});
await finished;
await queue.obliterate({ force: true });
await queue.close();
connection.disconnect();
