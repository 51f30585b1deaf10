import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { after, test, type TestContext } from 'node:test';
import amqp from 'amqplib';
import { Cluster, Redis } from 'ioredis';
import { TokenRegistry, startApiServer, type ApiServer } from '@drover/api';
import { DroverMetrics, createLogger, createRedis, isTerminal, loadConfig, rabbitNames, type DroverConfig, type JobRecord, type Resolver } from '@drover/core';
import { Runner } from '@drover/runner';
import { Scheduler } from '@drover/scheduler';
import { registerPrefix, unregisterPrefix } from './prefixes.js';
import { isTrackedGroup } from './process-groups.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** What schedulers started by the helpers sign job callbacks with (a scheduler does not start without one). */
export const TEST_CALLBACK_SECRET = 'whsec_dGVzdC1jYWxsYmFjay1zZWNyZXQtMzItYnl0ZXMh';

export interface Tokens {
  admin: string;
  submit: string;
  read: string;
}

/** The brokers every contract test runs against (TEST_BROKERS=bullmq to run one). */
export const BROKERS = (process.env.TEST_BROKERS ?? 'bullmq,rabbitmq').split(',').map((b) => b.trim()) as ('bullmq' | 'rabbitmq')[];
export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** One test per broker, named after it: the same test body checks both transports. */
export function brokerTest(name: string, fn: (t: TestContext, broker: 'bullmq' | 'rabbitmq') => Promise<void>): void {
  for (const broker of BROKERS) void test(`${name} [${broker}]`, (t) => fn(t, broker));
}

export interface StackOptions {
  broker?: 'bullmq' | 'rabbitmq';
  /** A Redis of the test's own (restart tests); default REDIS_URL. */
  redisUrl?: string;
  /** A RabbitMQ of the test's own (restart tests); default AMQP_URL. */
  amqpUrl?: string;
  /** Extra environment for loadConfig (RUNNER_CONCURRENCY, RUNNER_LEASE_MS, ...). */
  env?: Record<string, string>;
  /** A prefix from testPrefix (default: a new one). */
  prefix?: string;
  /** Start an in-process runner (default true). */
  runner?: boolean;
  scheduler?: boolean;
  /** How the API and the scheduler resolve callback and webhook hosts (default: the system's). */
  resolver?: Resolver;
}

export interface Stack {
  prefix: string;
  config: Readonly<DroverConfig>;
  url: string;
  tokens: Tokens;
  runner: Runner | undefined;
  scheduler: Scheduler | undefined;
  api: ApiServer;
  /** The registry the three share; the API's /metrics renders it. */
  metrics: DroverMetrics;
  /** The API's tokens: tests add restricted ones. */
  registry: TokenRegistry;
  request<T = unknown>(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: T }>;
  submit(spec: Record<string, unknown>): Promise<JobRecord>;
  waitFor(id: string, until?: (job: JobRecord) => boolean, timeoutMs?: number): Promise<JobRecord>;
  run(spec: Record<string, unknown>): Promise<JobRecord>;
}

const token = (): string => randomBytes(24).toString('base64url');

/**
 * Deletes every key of a test prefix, and its RabbitMQ queues, and unregisters it. Rejects when its Redis cannot be
 * reached within `connectTimeoutMs` (default: keeps trying as a service would).
 */
export async function deletePrefix(prefix: string, redisUrl = REDIS_URL, amqpUrl = AMQP_URL, opts: { connectTimeoutMs?: number } = {}): Promise<void> {
  // A cluster's keys of one prefix share a slot: SCAN the primary that holds it (a cluster client sends SCAN anywhere).
  const cluster = redisUrl.includes('+cluster://');
  const redis = opts.connectTimeoutMs === undefined || cluster
    ? createRedis(redisUrl, 'worker')
    : new Redis(redisUrl, { connectTimeout: opts.connectTimeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  redis.on('error', () => undefined);
  // A cluster client retries a dead cluster for ever: bounded here like the quick client, when asked to be.
  let timer: NodeJS.Timeout | undefined;
  const bounded = cluster && opts.connectTimeoutMs !== undefined
    ? new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the cluster is not reachable')), opts.connectTimeoutMs! * 5)))
    : undefined;
  try {
    if (bounded) await Promise.race([deleteOn(redis, prefix, cluster, amqpUrl, opts), bounded]);
    else await deleteOn(redis, prefix, cluster, amqpUrl, opts);
    unregisterPrefix(prefix);
    created.delete(prefix);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

async function deleteOn(redis: Redis, prefix: string, cluster: boolean, amqpUrl: string, opts: { connectTimeoutMs?: number }): Promise<void> {
  await redis.connect().catch((err: unknown) => {
    // createRedis connects by itself; only a refused quick client fails here.
    if (opts.connectTimeoutMs !== undefined && !cluster) throw err;
  });
  // The namespaces' keys too: each under a prefix of its own (namespacePrefix), in a slot of its own.
  const namespaces = await redis.hkeys(`{${prefix}}:namespaces`);
  for (const p of [...namespaces.map((ns) => `${prefix}/${ns}`), prefix]) {
    const queues = await redis.smembers(`{${p}}:queues`);
    await deleteRabbitQueues(p, queues, amqpUrl);
    const scanned = cluster ? (redis as unknown as Cluster).nodes('master') : [redis];
    for (const node of scanned) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `{${p}}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
  }
}

async function deleteRabbitQueues(prefix: string, queues: string[], amqpUrl: string): Promise<void> {
  if (!BROKERS.includes('rabbitmq')) return;
  const names = rabbitNames(prefix);
  const conn = await amqp.connect(amqpUrl).catch(() => undefined);
  if (!conn) return;
  try {
    const ch = await conn.createChannel();
    for (const q of [...queues.map(names.queue), names.deadQueue]) await ch.deleteQueue(q);
    await ch.deleteExchange(names.deadExchange);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** The prefixes this test file created that still have keys (deleted at the file's end, should a test not). */
const created = new Map<string, { redisUrl: string; amqpUrl: string }>();
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  after(async () => {
    for (const [prefix, at] of created) await deletePrefix(prefix, at.redisUrl, at.amqpUrl, { connectTimeoutMs: 2000 }).catch(() => undefined);
  });
}

/**
 * A key prefix of its own for a test, registered (test/helpers/prefixes.ts) with the Redis and RabbitMQ its keys go
 * to, so that its keys are deleted even when the test file is killed before its after-hooks run.
 */
export function testPrefix(redisUrl = REDIS_URL, amqpUrl = AMQP_URL): string {
  const prefix = `test-${randomUUID()}`;
  created.set(prefix, { redisUrl, amqpUrl });
  registerPrefix({ prefix, redisUrl, amqpUrl });
  return prefix;
}

/** An API on a free port, a scheduler and a runner, on a prefix of their own; torn down after the test. */
export async function startStack(t: TestContext, opts: StackOptions = {}): Promise<Stack> {
  const prefix = opts.prefix ?? testPrefix(opts.redisUrl ?? REDIS_URL, opts.amqpUrl ?? AMQP_URL);
  const config = loadConfig({
    REDIS_URL: opts.redisUrl ?? REDIS_URL,
    DROVER_PREFIX: prefix,
    DROVER_PORT: '0',
    DROVER_KILL_GRACE_MS: '500',
    RUNNER_ID: `runner-${prefix.slice(5, 13)}`,
    SCHEDULER_TICK_MS: '20',
    DROVER_BROKER: opts.broker ?? 'bullmq',
    DROVER_RATE_LIMIT: '0',
    // Tests knock on doors without tokens a lot; the ones about the failure budget set it themselves.
    DROVER_AUTH_FAIL_LIMIT: '0',
    DROVER_CALLBACK_SECRET: TEST_CALLBACK_SECRET,
    AMQP_URL: opts.amqpUrl ?? AMQP_URL,
    ...opts.env,
  });
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test');
  const tokens: Tokens = { admin: token(), submit: token(), read: token() };
  const registry = new TokenRegistry();
  registry.add(tokens.admin, { name: 'admin', scope: 'admin', namespaces: '*' });
  registry.add(tokens.submit, { name: 'submit', scope: 'submit' });
  registry.add(tokens.read, { name: 'read', scope: 'read' });

  // One registry for the three, as under `drover start`: the API's /metrics shows them all.
  const metrics = new DroverMetrics({ defaultMetrics: false });
  const resolver = opts.resolver ? { resolver: opts.resolver } : {};
  const scheduler = opts.scheduler === false ? undefined : new Scheduler({ config, logger, metrics, ...resolver });
  const runner = opts.runner === false ? undefined : new Runner({ config, logger, metrics });
  const api = await startApiServer({ config, logger, tokens: registry, metrics, ...resolver });
  t.after(async () => {
    await api.close();
    await runner?.close();
    await scheduler?.close();
    await deletePrefix(prefix, config.redisUrl, config.amqpUrl);
    assertNoJobProcesses();
  });
  await scheduler?.start();
  await runner?.start();

  const request: Stack['request'] = async (method, path, body, tok = tokens.admin) => {
    const headers: Record<string, string> = {};
    if (tok) headers.authorization = `Bearer ${tok}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${api.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as never };
  };
  const submit = async (spec: Record<string, unknown>): Promise<JobRecord> => {
    const res = await request<JobRecord>('POST', '/v1/jobs', spec);
    if (res.status !== 201) throw new Error(`submit failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const waitFor: Stack['waitFor'] = async (id, until = (j) => isTerminal(j.status), timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await request<JobRecord>('GET', `/v1/jobs/${id}`);
      if (res.status === 200 && until(res.body)) return res.body;
      if (Date.now() > deadline) throw new Error(`job ${id} did not reach the expected state: ${JSON.stringify(res.body)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { prefix, config, url: api.url, tokens, runner, scheduler, api, registry, metrics, request, submit, waitFor, run: async (spec) => waitFor((await submit(spec)).id) };
}

/** KEYS matching `pattern`, on every primary of a cluster (a cluster client sends KEYS to any one node). */
export async function keysOf(redis: Redis, pattern: string): Promise<string[]> {
  if (!((redis as unknown) instanceof Cluster)) return redis.keys(pattern);
  const cluster = redis as unknown as Cluster;
  // Its nodes are known once it has read the slots.
  if (cluster.status !== 'ready') await cluster.ping();
  return (await Promise.all(cluster.nodes('master').map((n) => n.keys(pattern)))).flat();
}

/** True while a process with this pid runs; a zombie (dead, waiting for its parent to reap it) counts as gone. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Children of this process that lead their own session: the jobs an in-process runner started. */
function jobProcesses(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    const children = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim();
    for (const pid of children ? children.split(/\s+/).map(Number) : []) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // fields: state, ppid, pgrp, session
        // Services a test started lead their own sessions too (test/helpers/process-groups.ts): not jobs.
        if (fields[0] !== 'Z' && Number(fields[3]) === pid && !isTrackedGroup(pid)) pids.push(pid);
      } catch {
        // exited meanwhile
      }
    }
  }
  return pids;
}

/** Leak check: a stack that was closed must have left no job process behind. */
function assertNoJobProcesses(): void {
  const left = jobProcesses();
  const what = (pid: number): string => {
    try {
      return `${pid} (${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()})`;
    } catch {
      return String(pid);
    }
  };
  if (left.length > 0) throw new Error(`job processes left running after the stack closed: ${left.map(what).join(', ')}`);
}
