/**
 * `npm run bench`: Drover against its baselines, in one run, on this machine.
 *   (1) physical limit: C posix_spawn loop of /bin/true, 2 threads
 *   (2) raw baseline: BullMQ worker (concurrency 8) spawning /bin/true with child_process
 *   (3) Drover end to end: POST /v1/jobs/batch -> API -> BullMQ -> one runner (concurrency 8) -> all finished
 *   (4) the same with 500 MB of ballast in the runner; and, for contrast, that runner on child_process
 *   (5) runner event-loop delay p99 during (3); submit->start latency for single jobs to an idle runner
 *   (6) Redis commands, CPU and bytes per job; (7) each Drover process's CPU per job against the jobs' own
 *   (8) for contrast, (3) without per-job isolation (one shared job user, no cgroups): what a uid and a cgroup per
 *       attempt cost when the bench runs as root
 * Every measured process runs on bare node (Drover from its build output), so they pay the same fork() cost.
 * Throughputs are measured in alternating rounds and the medians compared: a 2-core machine shared with Redis
 * gives noisy single runs.
 *   (6), (7) the scheduler: see scheduler-bench.ts
 * With --broker rabbitmq: (3) and (5) on BullMQ and on RabbitMQ in alternating rounds, and their ratio.
 * --section events: SSE consumers and a webhook while jobs flow (see events-bench.ts).
 * --section queues: (3) on a plain queue against queues with a global concurrency (the claim-time gate, parking
 * and releasing), alternating.
 * --section retention: Redis memory per finished job, kept and after retention.
 * --section archive: jobs/s archived into PostgreSQL while jobs finish (needs PostgreSQL; BENCH_PG_URL).
 * --section cluster: a local Redis Cluster of 3 primaries, one deployment with a namespace (so hash tag) on each, all three
 *   busy at once: jobs/s of each and together, and per primary the Redis CPU and commands per job; then one
 *   namespace alone on the same cluster, for contrast (not in `all`: it starts 3 more redis-server processes).
 * Options: --section executor|scheduler|queues|events|retention|archive|cluster|all, --jobs N (default 4000), --rounds N (default 3),
 *          --samples N (latency samples, default 200), --ballast MB (default 500),
 *          --delayed N (default 100000), --schedules N (default 10000).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, rabbitNames } from '@drover/core';
import { primaryPortOf, startRedisCluster } from '../scripts/local-redis-cluster.js';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { childPids, medianCost, ownRedis, procCpu, redisCost, redisSnapshot, type RedisCost } from './cost.js';
import { runEventsBench } from './events-bench.js';
import { runSchedulerBench } from './scheduler-bench.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '3' },
    samples: { type: 'string', default: '200' },
    ballast: { type: 'string', default: '500' },
    broker: { type: 'string', default: 'bullmq' },
    section: { type: 'string', default: 'all' },
    delayed: { type: 'string', default: '100000' },
    schedules: { type: 'string', default: '10000' },
  },
});
const JOBS = Number(values.jobs);
const ROUNDS = Number(values.rounds);
const SAMPLES = Number(values.samples);
const BALLAST_MB = values.ballast;
if (values.broker !== 'bullmq' && values.broker !== 'rabbitmq') throw new Error('--broker must be bullmq or rabbitmq');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = new URL('..', import.meta.url).pathname;
const children: ChildProcess[] = [];
/** Commands the bench itself sends while measuring (polls), subtracted from Redis's counts. */
const benchCalls = new Map<string, number>();
const counted = (name: string): void => void benchCalls.set(name, (benchCalls.get(name) ?? 0) + 1);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

function start(cmd: string, args: string[], env: Record<string, string>, stdout: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
  const child = spawn(cmd, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', REDIS_URL, DROVER_METRICS_PORT: '0', ...env }, stdio: ['ignore', stdout, 'inherit'] });
  children.push(child);
  return child;
}

/** Runs a process that prints {"jobs": N, "ms": T} last, and returns jobs per second. */
async function rateOf(child: ChildProcess): Promise<number> {
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  await once(child, 'exit');
  const { jobs, ms } = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { jobs: number; ms: number };
  return (jobs / ms) * 1000;
}

function buildSpawnLoop(): string {
  mkdirSync(`${ROOT}bench/out`, { recursive: true });
  const bin = `${ROOT}bench/out/posix-spawn-loop`;
  const r = spawnSync('cc', ['-O2', '-pthread', '-o', bin, `${ROOT}bench/posix-spawn-loop.c`], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('cc failed to build bench/posix-spawn-loop.c');
  return bin;
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

interface Drover {
  url: string;
  token: string;
  redis: Redis;
  base: string;
  env: Record<string, string>;
  /** Requests go to this namespace (Drover-Namespace); absent: default. */
  namespace?: string;
  /** The API's and the scheduler's processes. */
  pids: number[];
  stop(): Promise<void>;
}

/** Namespace `ns` of deployment `d` (created here): its requests, keys and runners are the namespace's. */
async function namespaceOf(d: Drover, prefix: string, ns: string): Promise<Drover> {
  await post(d, '/v1/namespaces', { name: ns });
  return { ...d, namespace: ns, base: `{${prefix}/${ns}}`, env: { ...d.env, RUNNER_NAMESPACE: ns }, stop: async () => undefined };
}

async function stopAll(procs: ChildProcess[]): Promise<void> {
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.filter((p) => p.exitCode === null && p.signalCode === null).map((p) => once(p, 'exit')));
}

/** API and scheduler; runners come and go per measurement. */
async function startDrover(prefix: string, broker: 'bullmq' | 'rabbitmq' = 'bullmq', extraEnv: Record<string, string> = {}): Promise<Drover> {
  const token = randomBytes(24).toString('base64url');
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const env = {
    DROVER_PREFIX: prefix,
    DROVER_ADMIN_TOKEN: token,
    // The scheduler signs every job callback, so it does not start without a key.
    DROVER_CALLBACK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
    DROVER_PORT: port,
    DROVER_LOG_LEVEL: 'warn',
    RUNNER_CONCURRENCY: '8',
    // One heartbeat a second, so event-loop delay is sampled finely.
    RUNNER_LEASE_MS: '3000',
    DROVER_BODY_LIMIT: String(16 * 1024 * 1024),
    DROVER_BROKER: broker,
    // The events section's webhook receiver listens on loopback, which outbound calls reach only when allowed.
    DROVER_OUTBOUND_ALLOW: '127.0.0.1',
    ...extraEnv,
  };
  const procs = (['api', 'scheduler'] as const).map((svc) => start(process.execPath, ['cli/dist/main.js', svc], env));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; !(await fetch(`${url}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (i > 300) throw new Error('Drover API did not start');
    await sleep(100);
  }
  return { url, token, redis: createRedis(extraEnv.REDIS_URL ?? REDIS_URL, 'worker'), base: `{${prefix}}`, env, pids: procs.map((p) => p.pid!), stop: () => stopAll(procs) };
}

async function withRunner<T>(d: Drover, script: string[], env: Record<string, string>, fn: (runnerId: string, pid: number) => Promise<T>): Promise<T> {
  const runnerId = `bench-${randomUUID().slice(0, 8)}`;
  const proc = start(process.execPath, script, { ...d.env, ...env, RUNNER_ID: runnerId });
  for (let i = 0; (await d.redis.zscore(`${d.base}:runners`, runnerId)) === null; i++) {
    if (i > 600 || proc.exitCode !== null) throw new Error('runner did not start');
    await sleep(50);
  }
  try {
    return await fn(runnerId, proc.pid!);
  } finally {
    await stopAll([proc]);
  }
}

async function post(d: Drover, path: string, body: unknown, method = 'POST', expect = 201): Promise<unknown> {
  const res = await fetch(`${d.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json', ...(d.namespace ? { 'drover-namespace': d.namespace } : {}) },
    body: JSON.stringify(body),
  });
  if (res.status !== expect) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Submits `jobs` /bin/true jobs in batches of 500 and waits until all succeeded; returns jobs/s. */
async function endToEnd(d: Drover, jobs: number, queue = 'default'): Promise<number> {
  const key = `${d.base}:idx:s:succeeded`;
  counted('zcard');
  const target = (await d.redis.zcard(key)) + jobs;
  const started = performance.now();
  for (let i = 0; i < jobs; i += 500) {
    await post(d, '/v1/jobs/batch', { jobs: Array.from({ length: Math.min(500, jobs - i) }, () => ({ argv: ['/bin/true'], queue })) });
  }
  while ((counted('zcard'), await d.redis.zcard(key)) < target) await sleep(5);
  return (jobs / (performance.now() - started)) * 1000;
}

/** Samples the runner's per-second event-loop delay p99 while `work` runs; returns the worst second. */
async function loopDelayDuring<T>(d: Drover, runnerId: string, work: Promise<T>): Promise<[T, number]> {
  let worst = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      counted('hget');
      worst = Math.max(worst, Number((await d.redis.hget(`${d.base}:runner:${runnerId}`, 'loopDelayP99Ms')) ?? 0));
      await sleep(250);
    }
  })();
  const result = await work;
  await sleep(1100); // the beat that covers the last second
  done = true;
  await sampler;
  worst = Math.max(worst, Number((await d.redis.hget(`${d.base}:runner:${runnerId}`, 'loopDelayP99Ms')) ?? 0));
  return [result, worst];
}

async function latency(d: Drover): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const job = (await post(d, '/v1/jobs', { argv: ['/bin/true'] })) as { id: string };
    for (;;) {
      const [status, createdAt, startedAt] = await d.redis.hmget(`${d.base}:job:${job.id}`, 'status', 'createdAt', 'startedAt');
      if (status === 'succeeded' || status === 'failed') {
        out.push(Number(startedAt) - Number(createdAt));
        break;
      }
      await sleep(2);
    }
  }
  return out.sort((a, b) => a - b);
}

function printTable(title: string, rows: [string, string][]): void {
  const width = Math.max(...rows.map((x) => x[0].length));
  process.stdout.write(`\n${title}\n${rows.map(([k, v]) => `${k.padEnd(width)}  ${v.padStart(8)}`).join('\n')}\n`);
}

async function main(): Promise<void> {
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const section = values.section;
  if (values.broker === 'rabbitmq') {
    await brokerSection(prefix);
    return;
  }
  if (section === 'cluster') await clusterSection(`${prefix}-cl`);
  if (section === 'executor' || section === 'all') await executorSection(prefix);
  if (section === 'queues' || section === 'all') await queueSection(`${prefix}-q`);
  if (section === 'events' || section === 'all') await eventsSection(`${prefix}-e`);
  if (section === 'retention' || section === 'all') await retentionSection(`${prefix}-r`);
  if (section === 'archive' || section === 'all') await archiveSection(`${prefix}-a`);
  if (section === 'scheduler' || section === 'all') {
    const redis = new Redis(REDIS_URL);
    try {
      printTable('scheduler', await runSchedulerBench({ redisUrl: REDIS_URL, prefix: `${prefix}-sched`, delayed: Number(values.delayed), schedules: Number(values.schedules) }));
    } finally {
      await deleteKeys(redis, `{${prefix}-sched}*`);
      redis.disconnect();
    }
  }
}

/** The same end-to-end measurements on both brokers, alternating. */
async function brokerSection(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  const RUNNER = ['cli/dist/main.js', 'runner'];
  const bull = await startDrover(`${prefix}-bull`, 'bullmq');
  const rabbit = await startDrover(`${prefix}-rmq`, 'rabbitmq');
  const r = { bull: [] as number[], rabbit: [] as number[] };
  let lat = { bull: [] as number[], rabbit: [] as number[] };
  try {
    for (const d of [bull, rabbit]) await withRunner(d, RUNNER, {}, () => endToEnd(d, 200)); // warm-up
    for (let i = 0; i < ROUNDS; i++) {
      r.bull.push(await withRunner(bull, RUNNER, {}, () => endToEnd(bull, JOBS)));
      r.rabbit.push(await withRunner(rabbit, RUNNER, {}, () => endToEnd(rabbit, JOBS)));
      process.stderr.write(`round ${i + 1}: bullmq ${r.bull[i]!.toFixed(0)}/s, rabbitmq ${r.rabbit[i]!.toFixed(0)}/s\n`);
    }
    lat = { bull: await withRunner(bull, RUNNER, {}, () => latency(bull)), rabbit: await withRunner(rabbit, RUNNER, {}, () => latency(rabbit)) };
  } finally {
    await Promise.all([bull.stop(), rabbit.stop()]);
    bull.redis.disconnect();
    rabbit.redis.disconnect();
    await deleteRabbitQueues(`${prefix}-rmq`);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await deleteKeys(redis, `{${prefix}*`);
    redis.disconnect();
  }
  const [b, q] = [median(r.bull), median(r.rabbit)];
  printTable(`brokers: medians of ${ROUNDS} rounds, ${JOBS} jobs each, one runner at concurrency 8`, [
    ['Drover end to end on BullMQ, jobs/s', b.toFixed(0)],
    ['Drover end to end on RabbitMQ, jobs/s', q.toFixed(0)],
    ['    rabbitmq/bullmq   target >= 0.9', (q / b).toFixed(2)],
    [`submit->start p50 / p99 on BullMQ, ms (n=${lat.bull.length})`, `${pct(lat.bull, 50).toFixed(1)} / ${pct(lat.bull, 99).toFixed(1)}`],
    [`submit->start p50 / p99 on RabbitMQ, ms (n=${lat.rabbit.length})`, `${pct(lat.rabbit, 50).toFixed(1)} / ${pct(lat.rabbit, 99).toFixed(1)}`],
  ]);
}

/** Runs `fn` against an API and scheduler of its own, then stops everything and deletes its keys. */
async function withDrover<T>(prefix: string, fn: (d: Drover) => Promise<T>, env: Record<string, string> = {}): Promise<T> {
  const redis = new Redis(REDIS_URL);
  const d = await startDrover(prefix, 'bullmq', env);
  try {
    return await fn(d);
  } finally {
    await d.stop();
    d.redis.disconnect();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await deleteKeys(redis, `{${prefix}*`);
    redis.disconnect();
  }
}

/** Archive throughput: jobs/s written to PostgreSQL while jobs finish as fast as one runner takes them. */
async function archiveSection(prefix: string): Promise<void> {
  const admin = new pg.Client({ connectionString: process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  const dbName = `drover_bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  url.pathname = `/${dbName}`;
  try {
    const rows = await withDrover(
      prefix,
      async (d) => {
        const db = new pg.Client({ connectionString: url.toString() });
        await db.connect();
        try {
          const count = async (): Promise<number> => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM drover_jobs')).rows[0]!.n);
          let finishedMs = 0;
          const started = performance.now();
          await withRunner(d, ['cli/dist/main.js', 'runner'], {}, async () => {
            await endToEnd(d, JOBS);
            finishedMs = performance.now() - started;
            while ((await count()) < JOBS) await sleep(20);
          });
          const archivedMs = performance.now() - started;
          return [
            [`jobs finished, jobs/s (${JOBS} jobs, one runner at concurrency 8)`, ((JOBS / finishedMs) * 1000).toFixed(0)],
            ['jobs archived into PostgreSQL, jobs/s over the same run', ((JOBS / archivedMs) * 1000).toFixed(0)],
            ['archive lag after the last job finished, ms', (archivedMs - finishedMs).toFixed(0)],
          ] as [string, string][];
        } finally {
          await db.end();
        }
      },
      { DATABASE_URL: url.toString() },
    );
    printTable('archive', rows);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}

/** Redis memory per finished job (one output line each), while kept and after retention deleted them. */
async function retentionSection(prefix: string): Promise<void> {
  const used = async (r: Redis): Promise<number> => Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1] ?? NaN);
  const rows = await withDrover(
    prefix,
    async (d) => {
      const before = await used(d.redis);
      await withRunner(d, ['cli/dist/main.js', 'runner'], {}, async () => {
        for (let i = 0; i < JOBS; i += 500) {
          await post(d, '/v1/jobs/batch', { jobs: Array.from({ length: Math.min(500, JOBS - i) }, (_, j) => ({ argv: ['/bin/echo', `line ${i + j}`] })) });
        }
        while ((await d.redis.zcard(`${d.base}:idx:s:succeeded`)) < JOBS) await sleep(20);
      });
      const kept = await used(d.redis);
      while ((await d.redis.zcard(`${d.base}:idx:all`)) > 0) await sleep(200);
      const after = await used(d.redis);
      const rows: [string, string][] = [
        [`Redis memory per finished job while kept, bytes (${JOBS} jobs, one output line each)`, ((kept - before) / JOBS).toFixed(0)],
        ['Redis memory per finished job after retention deleted them, bytes', ((after - before) / JOBS).toFixed(0)],
      ];
      return rows;
    },
    // Long enough that every job finishes before the first is deleted.
    { DROVER_RETENTION_FINISHED: '20000' },
  );
  printTable('retention', rows);
}

/** Events: what SSE consumers and a webhook receiver get while jobs flow. */
async function eventsSection(prefix: string): Promise<void> {
  const rows = await withDrover(prefix, (d) =>
    withRunner(d, ['cli/dist/main.js', 'runner'], {}, () => runEventsBench({ url: d.url, token: d.token, run: (n) => endToEnd(d, n) }, { jobs: JOBS, sse: 2 })),
  );
  printTable('events', rows);
}

/** Throughput through the queue gate: a plain queue, concurrency 8 (the runner's own limit) and concurrency 4. */
async function queueSection(prefix: string): Promise<void> {
  const RUNNER = ['cli/dist/main.js', 'runner'];
  const env = { RUNNER_QUEUES: 'default,c8,c4' };
  const r = { plain: [] as number[], c8: [] as number[], c4: [] as number[] };
  await withDrover(prefix, async (d) => {
    await post(d, '/v1/queues/c8', { concurrency: 8 }, 'PUT', 200);
    await post(d, '/v1/queues/c4', { concurrency: 4 }, 'PUT', 200);
    await withRunner(d, RUNNER, env, () => endToEnd(d, 200)); // warm-up
    for (let i = 0; i < ROUNDS; i++) {
      for (const q of ['plain', 'c8', 'c4'] as const) r[q].push(await withRunner(d, RUNNER, env, () => endToEnd(d, JOBS, q === 'plain' ? 'default' : q)));
      process.stderr.write(`round ${i + 1}: plain ${r.plain[i]!.toFixed(0)}/s, concurrency 8 ${r.c8[i]!.toFixed(0)}/s, concurrency 4 ${r.c4[i]!.toFixed(0)}/s\n`);
    }
  });
  const [plain, c8, c4] = [median(r.plain), median(r.c8), median(r.c4)];
  printTable(`queues: medians of ${ROUNDS} rounds, ${JOBS} jobs each, one runner at concurrency 8`, [
    ['plain queue, jobs/s', plain.toFixed(0)],
    ['queue with concurrency 8 (gate bookkeeping only), jobs/s', c8.toFixed(0)],
    ['    ratio to plain', (c8 / plain).toFixed(2)],
    ['queue with concurrency 4 (parking and releasing), jobs/s', c4.toFixed(0)],
    ['    ratio to plain', (c4 / plain).toFixed(2)],
  ]);
}

async function deleteRabbitQueues(prefix: string): Promise<void> {
  const conn = await amqp.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  try {
    const ch = await conn.createChannel();
    const names = rabbitNames(prefix);
    for (const q of [names.queue('default'), names.deadQueue]) await ch.deleteQueue(q);
    await ch.deleteExchange(names.deadExchange);
  } finally {
    await conn.close();
  }
}

/** What one Drover round cost: Redis (own counts taken off) and each process's CPU, per job. */
interface RoundCost {
  redis: RedisCost;
  /** CPU ms per job: api, scheduler, runner, spawner helper; and the jobs' own processes. */
  cpu: { api: number; scheduler: number; runner: number; spawner: number; jobs: number };
}

/** Runs `work` (which finishes `jobs` jobs) under runner `runnerPid`, measuring Redis and every process. */
async function measured<T>(d: Drover, runnerPid: number, jobs: number, work: () => Promise<T>): Promise<[T, RoundCost]> {
  const spawner = childPids(runnerPid)[0] ?? 0;
  const pids = [...d.pids, runnerPid, spawner];
  const cpu0 = pids.map(procCpu);
  const own0 = new Map(benchCalls);
  const r0 = await redisSnapshot(d.redis);
  const result = await work();
  const r1 = await redisSnapshot(d.redis);
  const cpu1 = pids.map(procCpu);
  const own = new Map([...benchCalls].map(([k, v]) => [k, v - (own0.get(k) ?? 0)]));
  const per = (i: number, f: 'self' | 'children'): number => (cpu1[i]![f] - cpu0[i]![f]) / jobs;
  return [result, { redis: redisCost(r0, r1, jobs, own), cpu: { api: per(0, 'self'), scheduler: per(1, 'self'), runner: per(2, 'self'), spawner: per(3, 'self'), jobs: per(3, 'children') } }];
}

async function executorSection(prefix: string): Promise<void> {
  const RUNNER = ['cli/dist/main.js', 'runner'];
  const BALLAST = ['bench/ballast-runner.mjs'];
  // A Redis of the section's own: its INFO counts only this system's commands.
  const own = await ownRedis((args) => start('redis-server', args, {}));
  const redis = new Redis(own.url);
  try {
    process.stderr.write(`bench: ${JOBS} jobs of /bin/true per measurement, ${ROUNDS} rounds, runner concurrency 8, Redis :${own.port}\n`);
    const loop = buildSpawnLoop();
    const drover = await startDrover(prefix, 'bullmq', { REDIS_URL: own.url });
    const r = { phys: [] as number[], raw: [] as number[], drover: [] as number[], ballast: [] as number[], delay: [] as number[] };
    const rawCost: RedisCost[] = [];
    const cost: RoundCost[] = [];
    let contrast = NaN;
    let bare: [number, RoundCost] | undefined;
    let lat: number[] = [];
    try {
      await withRunner(drover, RUNNER, {}, () => endToEnd(drover, 200)); // warm-up
      for (let i = 0; i < ROUNDS; i++) {
        r.phys.push(await rateOf(start(loop, [String(JOBS * 2), '2'], {}, 'pipe')));
        const raw0 = await redisSnapshot(redis);
        r.raw.push(await rateOf(start(process.execPath, ['bench/raw-bullmq.mjs'], { REDIS_URL: own.url, BENCH_JOBS: String(JOBS), BENCH_PREFIX: `{${prefix}-raw${i}}:raw` }, 'pipe')));
        rawCost.push(redisCost(raw0, await redisSnapshot(redis), JOBS));
        const [[rate, delay], c] = await withRunner(drover, RUNNER, {}, (id, pid) => measured(drover, pid, JOBS, () => loopDelayDuring(drover, id, endToEnd(drover, JOBS))));
        r.drover.push(rate);
        r.delay.push(delay);
        cost.push(c);
        r.ballast.push(await withRunner(drover, BALLAST, { BENCH_BALLAST_MB: BALLAST_MB }, () => endToEnd(drover, JOBS)));
        process.stderr.write(
          `round ${i + 1}: physical ${r.phys[i]!.toFixed(0)}/s, raw ${r.raw[i]!.toFixed(0)}/s, drover ${rate.toFixed(0)}/s ` +
            `(loop p99 ${delay.toFixed(1)} ms, ${c.redis.commandsPerJob.toFixed(1)} Redis commands/job), drover +${BALLAST_MB} MB ${r.ballast[i]!.toFixed(0)}/s\n`,
        );
      }
      contrast = await withRunner(drover, BALLAST, { BENCH_BALLAST_MB: BALLAST_MB, RUNNER_EXECUTOR: 'child_process' }, () =>
        endToEnd(drover, Math.max(200, Math.floor(JOBS / 8))),
      );
      // What the per-job isolation costs (a uid and a cgroup per attempt, when the runner is root): the same runner
      // with every job as one shared user, in its process group only.
      bare = await withRunner(drover, RUNNER, { RUNNER_JOB_USER: 'nobody', RUNNER_CGROUP: 'off' }, (_id, pid) => measured(drover, pid, JOBS, () => endToEnd(drover, JOBS)));
      lat = await withRunner(drover, RUNNER, {}, () => latency(drover));
    } finally {
      await drover.stop();
      drover.redis.disconnect();
    }
    const [phys, raw, tput, ballast] = [median(r.phys), median(r.raw), median(r.drover), median(r.ballast)];
    const [dr, rr] = [medianCost(cost.map((c) => c.redis)), medianCost(rawCost)];
    const cpu = (f: keyof RoundCost['cpu']): number => median(cost.map((c) => c.cpu[f]));
    const droverCpu = cpu('api') + cpu('scheduler') + cpu('runner') + cpu('spawner');
    const rows: [string, string][] = [
      ['(1) physical limit: C posix_spawn loop, 2 threads, spawns/s', phys.toFixed(0)],
      ['(2) raw baseline: BullMQ worker + child_process spawn, jobs/s', raw.toFixed(0)],
      ['(3) Drover end to end (HTTP batch -> runner on the spawner helper), jobs/s', tput.toFixed(0)],
      ['    (3)/(2)   target >= 2.9', (tput / raw).toFixed(2)],
      ['    (3)/(1)   target >= 0.5', (tput / phys).toFixed(2)],
      [`(4) Drover, runner holding +${BALLAST_MB} MB, jobs/s`, ballast.toFixed(0)],
      ['    (4)/(3)   target >= 0.9', (ballast / tput).toFixed(2)],
      [`    contrast: the same +${BALLAST_MB} MB runner on child_process, jobs/s`, contrast.toFixed(0)],
      ['(5) runner event-loop delay p99 during (3), worst second, ms  (target <= 20)', median(r.delay).toFixed(1)],
      [`    submit->start latency p50, ms (n=${lat.length}, idle runner)  (target <= 3)`, pct(lat, 50).toFixed(1)],
      ['    submit->start latency p99, ms  (target <= 15)', pct(lat, 99).toFixed(1)],
      ['(6) Redis commands per job: Drover (3)  (target <= 40)', dr.commandsPerJob.toFixed(1)],
      ['    raw BullMQ (2)', rr.commandsPerJob.toFixed(1)],
      ['    Redis CPU per job, ms: Drover', dr.cpuMsPerJob.toFixed(3)],
      ['    Redis CPU per job, ms: raw BullMQ', rr.cpuMsPerJob.toFixed(3)],
      ['    Drover/raw  (target <= 1.3)', (dr.cpuMsPerJob / rr.cpuMsPerJob).toFixed(2)],
      ['    Redis bytes per finished job, kept (before retention)  (target <= 2048)', dr.bytesPerJob.toFixed(0)],
      ['(7) Drover CPU per job, ms: API', cpu('api').toFixed(3)],
      ['    scheduler', cpu('scheduler').toFixed(3)],
      ['    runner', cpu('runner').toFixed(3)],
      ['    spawner helper', cpu('spawner').toFixed(3)],
      ['    all of Drover', droverCpu.toFixed(3)],
      ['    the /bin/true processes themselves', cpu('jobs').toFixed(3)],
      ['    Drover/jobs  (target <= 1)', (droverCpu / cpu('jobs')).toFixed(2)],
    ];
    if (bare) {
      const [rate, c] = bare;
      const all = c.cpu.api + c.cpu.scheduler + c.cpu.runner + c.cpu.spawner;
      rows.push(
        ['(8) contrast: (3) without per-job isolation (RUNNER_JOB_USER=nobody, RUNNER_CGROUP=off), jobs/s', rate.toFixed(0)],
        ['    its Drover CPU per job, ms (runner, spawner helper)', `${all.toFixed(3)} (${c.cpu.runner.toFixed(3)}, ${c.cpu.spawner.toFixed(3)})`],
        ['    its Drover/jobs', (all / c.cpu.jobs).toFixed(2)],
      );
    }
    printTable(`executor: medians of ${ROUNDS} rounds`, rows);
    // µs inside a script's commands count in evalsha's own time as well: the sum is not Redis' CPU.
    const byCommand = (rows: [string, number, number][]): [string, string][] => rows.map(([name, n, us]) => [name, `${n.toFixed(2)}  ${us.toFixed(1)} us`]);
    printTable('Redis commands per job in (3), by command (median round): calls, time in them', byCommand(dr.byCommand.slice(0, 16)));
    printTable('Redis commands per job in (2), by command: calls, time in them', byCommand(rr.byCommand.slice(0, 10)));
  } finally {
    redis.disconnect();
    await own.stop();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

await main();

/** A node's CPU seconds (user + sys) and commands served so far (INFO). */
async function nodeStats(port: number): Promise<{ cpu: number; calls: number }> {
  const r = new Redis(port, '127.0.0.1');
  try {
    const cpu = await r.info('cpu');
    const stats = await r.info('commandstats');
    const sec = (name: string): number => Number(new RegExp(`${name}:([0-9.]+)`).exec(cpu)?.[1] ?? 0);
    return { cpu: sec('used_cpu_user') + sec('used_cpu_sys'), calls: [...stats.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0) };
  } finally {
    r.disconnect();
  }
}

/** One deployment, three namespaces on three primaries of one cluster, busy at once; then one alone. */
async function clusterSection(prefix: string): Promise<void> {
  const RUNNER = ['cli/dist/main.js', 'runner'];
  const dir = mkdtempSync(join(tmpdir(), 'drover-bench-cluster-'));
  const nodes: ChildProcess[] = [];
  const drovers: Drover[] = [];
  let deployment: Drover | undefined;
  try {
    const cluster = await startRedisCluster(dir, 3, false, (args) => {
      const p = start('redis-server', args, {});
      nodes.push(p);
      return p;
    });
    // One namespace per primary: its hash tag's slot decides where its keys live.
    const byPort = new Map<number, string>();
    for (let i = 0; byPort.size < 3; i++) {
      const ns = `ns${i}`;
      const port = await primaryPortOf(cluster.nodes, `{${prefix}/${ns}}`);
      if (!byPort.has(port)) byPort.set(port, ns);
    }
    const ports = [...byPort.keys()];
    deployment = await startDrover(prefix, 'bullmq', { REDIS_URL: cluster.url });
    for (const ns of byPort.values()) drovers.push(await namespaceOf(deployment, prefix, ns));
    for (const d of drovers) await withRunner(d, RUNNER, {}, () => endToEnd(d, 200)); // warm-up
    const per = Math.max(500, Math.floor(JOBS / 3));
    const before = await Promise.all(ports.map(nodeStats));
    const started = performance.now();
    const rates = await Promise.all(drovers.map((d) => withRunner(d, RUNNER, {}, () => endToEnd(d, per))));
    const total = ((per * 3) / (performance.now() - started)) * 1000;
    const after = await Promise.all(ports.map(nodeStats));
    const alone = await withRunner(drovers[0]!, RUNNER, {}, () => endToEnd(drovers[0]!, per));
    printTable(`cluster: 3 primaries, one API and scheduler, a namespace on each primary (one runner each at concurrency 8), ${per} jobs each at once`, [
      ...rates.map((r, i): [string, string] => [`namespace ${drovers[i]!.namespace} (primary :${ports[i]}), jobs/s`, r.toFixed(0)]),
      ['all three together, jobs/s', total.toFixed(0)],
      [`namespace ${drovers[0]!.namespace} alone on the cluster, jobs/s`, alone.toFixed(0)],
      ...ports.map((port, i): [string, string] => [
        `primary :${port}: Redis CPU ms / commands per job of its namespace`,
        `${(((after[i]!.cpu - before[i]!.cpu) * 1000) / per).toFixed(3)} / ${((after[i]!.calls - before[i]!.calls) / per).toFixed(1)}`,
      ]),
    ]);
  } finally {
    await deployment?.stop();
    deployment?.redis.disconnect();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(nodes.filter((n) => n.exitCode === null).map((n) => once(n, 'exit')));
    rmSync(dir, { recursive: true, force: true });
  }
}
