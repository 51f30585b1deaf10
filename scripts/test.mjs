#!/usr/bin/env node
// `npm test`: the suite in parallel, then the fault tests one file at a time (they restart brokers of their own,
// kill processes and load the machine, which would disturb tests running beside them). Ends with one line
// `N passed, N failed` over both phases. `npm test -- --faults` or `--no-faults` runs one phase only;
// `npm test -- --cluster` (or TEST_REDIS=cluster) runs the end-to-end files on a Redis Cluster of its own instead.
//
// Nothing a test started outlives the run: the test helpers start every process in a process group of its own and
// register it in a directory this script hands them (DROVER_TEST_PGROUPS). After each phase, and on Ctrl-C or
// SIGTERM, every group still registered is killed: a test file killed by its timeout leaves nothing behind.
// The fault phase runs on a Redis and a RabbitMQ of its own (test/helpers/fault-services.ts) and must not touch
// the shared ones (REDIS_URL, AMQP_URL): that is checked around it. Keys a killed test file left are deleted.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { killLeftGroups as killGroupsIn } from './test-groups.mjs';

// Fault tests append a row each (test/helpers/audit.ts); the table is printed after the run.
const SUMMARY = 'test/artifacts/faults-summary.jsonl';
rmSync(SUMMARY, { force: true });
const GROUPS = mkdtempSync(join(tmpdir(), 'drover-test-pgroups-'));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// Every key prefix a test creates is registered here (test/helpers/stack.ts) until its keys are deleted.
const PREFIXES = mkdtempSync(join(tmpdir(), 'drover-test-prefixes-'));

const killLeftGroups = () => killGroupsIn(GROUPS);
const tsx = (script, args, stdio) => spawn(process.execPath, ['--conditions=drover-src', '--import', 'tsx', script, ...args], { stdio, env: { ...process.env, DROVER_TEST_PGROUPS: GROUPS } });

/** Deletes the keys and RabbitMQ queues of the prefixes a killed test file could not; answers what it did. */
async function deleteLeftPrefixes() {
  if (readdirSync(PREFIXES).every((f) => f === 'registrations.jsonl')) return '';
  const child = tsx('test/helpers/left-prefixes.ts', [PREFIXES], ['ignore', 'pipe', 'inherit']);
  let said = '';
  child.stdout.on('data', (c) => (said += c));
  await new Promise((resolve) => child.on('close', resolve));
  return said.trim();
}

/**
 * A helper script that starts servers of the run's own and prints their URLs as one JSON line: the fault phase's
 * Redis and RabbitMQ (test/helpers/fault-services.ts), the cluster run's Redis Cluster (cluster-service.ts).
 * close() closes its stdin, and it stops them.
 */
async function startRunServices(script, what) {
  const child = tsx(script, [], ['pipe', 'pipe', 'inherit']);
  let said = '';
  const urls = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      said += c;
      if (said.includes('\n')) resolve(JSON.parse(said.slice(0, said.indexOf('\n'))));
    });
    child.on('exit', (code) => reject(new Error(`${what} did not start (exit ${code})`)));
  });
  return {
    ...urls,
    close: async () => {
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

let runner;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, async () => {
    if (runner?.pid) {
      try {
        process.kill(-runner.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await deleteLeftPrefixes();
    const left = killLeftGroups();
    process.stderr.write(`\ninterrupted: killed the test runner and ${left.length} process group(s) the tests had started\n`);
    rmSync(GROUPS, { recursive: true, force: true });
    rmSync(PREFIXES, { recursive: true, force: true });
    process.exit(130);
  });
}

/** The prefixes registered by the tests (test/helpers/prefixes.ts), from the `skip`-th on. */
function registrationsSince(skip) {
  const log = join(PREFIXES, 'registrations.jsonl');
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).slice(skip).map((l) => JSON.parse(l));
}
/** Host and port of two URLs are the same (localhost and 127.0.0.1 alike). */
function sameServer(a, b) {
  const hp = (u) => {
    const url = new URL(u);
    return `${url.hostname === 'localhost' ? '127.0.0.1' : url.hostname}:${url.port}`;
  };
  // A cluster or Sentinel URL (several hosts) is a test's own servers, never the shared one.
  try {
    return hp(a) === hp(b);
  } catch {
    return false;
  }
}
// Stacks open RabbitMQ connections only when the rabbitmq broker is among those tested.
const BROKERS_USED = (process.env.TEST_BROKERS ?? 'bullmq,rabbitmq').includes('rabbitmq');

/** What the fault phase must leave as it was: the shared Redis's run id, and a RabbitMQ connection opened before. */
async function watchShared() {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  const runId = async () => /run_id:(\w+)/.exec(await redis.info('server'))?.[1];
  const connections = async () => Number(/total_connections_received:(\d+)/.exec(await redis.info('stats'))?.[1]);
  const before = await redis.connect().then(runId, () => undefined);
  const connectionsBefore = before === undefined ? undefined : await connections();
  const logAt = registrationsSince(0).length;
  const conn = await amqp.connect(AMQP_URL).catch(() => undefined);
  let closed;
  conn?.on('error', () => undefined);
  conn?.on('close', () => void (closed = true));
  return async () => {
    const problems = [];
    if (before !== undefined) {
      const after = await runId().catch(() => undefined);
      if (after !== before) problems.push(`the shared Redis at ${REDIS_URL} was ${after === undefined ? 'stopped' : 'restarted'} during the fault phase`);
      // Something else may use the same Redis (other tests, a developer's tools), so a connection count is only said.
      const opened = after === before ? (await connections()) - connectionsBefore : 0;
      if (opened > 0) process.stdout.write(`# note: ${opened} connection(s) to the shared Redis at ${REDIS_URL} were opened during the fault phase (by these tests, or by something else using it)\n`);
    }
    // What the tests say they used: every prefix registered during the phase, with its Redis and RabbitMQ.
    for (const entry of registrationsSince(logAt)) {
      if (sameServer(entry.redisUrl, REDIS_URL)) problems.push(`a fault test put prefix ${entry.prefix} on the shared Redis at ${REDIS_URL}`);
      if (BROKERS_USED && sameServer(entry.amqpUrl, AMQP_URL)) problems.push(`a fault test put prefix ${entry.prefix} on the shared RabbitMQ at ${new URL(AMQP_URL).host}`);
    }
    if (conn && closed) problems.push(`the shared RabbitMQ at ${new URL(AMQP_URL).host} closed a connection during the fault phase (stopped or restarted)`);
    await conn?.close().catch(() => undefined);
    redis.disconnect();
    return problems;
  };
}

const args = process.argv.slice(2);
// `--cluster` (or TEST_REDIS=cluster): the end-to-end files on a Redis Cluster of the run's own, both brokers.
const onCluster = args.includes('--cluster') || process.env.TEST_REDIS === 'cluster';
const phases = [];
if (onCluster) phases.push({ dir: 'test', concurrency: 4, cluster: true });
else {
  if (!args.includes('--faults')) phases.push({ dir: 'test', concurrency: 4 });
  if (!args.includes('--no-faults')) phases.push({ dir: 'test/faults', concurrency: 1 });
}

/**
 * The end-to-end files: those that reach Drover through a test stack (HTTP, the CLI, the browser) and never a Redis
 * of their own choosing (a plain client of REDIS_URL, services as processes, a server of their own), so that the
 * cluster's URL in REDIS_URL is all they need.
 */
function endToEnd(file) {
  const text = readFileSync(file, 'utf8');
  return text.includes('startStack(') && !/new Redis\(|new Cluster\(|startService|REDIS_URL|startLocalCluster|own-redis|ownRedis|startOwnRabbitMQ/.test(text);
}

let passed = 0;
let failed = 0;
for (const { dir, concurrency, cluster } of phases) {
  const all = readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `${dir}/${f}`);
  const files = cluster ? all.filter(endToEnd) : all;
  if (files.length === 0) continue;
  const faults = dir === 'test/faults';
  const shared = faults ? await watchShared() : undefined;
  // The fault phase runs on a Redis and a RabbitMQ of its own, the cluster run on a Redis Cluster of its own:
  // REDIS_URL (and AMQP_URL) point at them.
  const script = faults ? 'test/helpers/fault-services.ts' : cluster ? 'test/helpers/cluster-service.ts' : undefined;
  const what = faults ? "the fault phase's own Redis and RabbitMQ" : 'the run\'s own Redis Cluster';
  const own = script ? await startRunServices(script, what).catch((err) => void process.stdout.write(`# ${err.message}\n`) ?? null) : undefined;
  if (own === null) {
    failed += 1;
    continue;
  }
  if (faults) process.stdout.write(`# fault phase: its own Redis at ${own.redisUrl}, its own RabbitMQ at ${new URL(own.amqpUrl).host}\n`);
  if (cluster) process.stdout.write(`# on a Redis Cluster of its own (${own.redisUrl}): ${files.length} end-to-end files of ${all.length}\n`);
  const urls = own ? { REDIS_URL: own.redisUrl, ...(own.amqpUrl ? { AMQP_URL: own.amqpUrl } : {}) } : {};
  // Its own process group, so an interrupted run takes the test files down with it.
  const child = (runner = spawn(
    process.execPath,
    ['--conditions=drover-src', '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=180000', '--test-reporter=tap', ...files],
    { stdio: ['ignore', 'pipe', 'inherit'], detached: true, env: { ...process.env, ...urls, DROVER_TEST_PGROUPS: GROUPS, DROVER_TEST_PREFIXES: PREFIXES } },
  ));
  let tail = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    tail = (tail + chunk.toString()).slice(-4000);
  });
  // 'exit', not 'close': a process the tests left behind would hold the pipe open and 'close' would never come.
  const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? signal)));
  // Keys first (a killed file's own Redis may still run), then the processes.
  const keys = await deleteLeftPrefixes();
  if (keys) process.stdout.write(`# ${dir}: ${keys}\n`);
  await own?.close();
  const left = killLeftGroups();
  if (left.length > 0) process.stdout.write(`# ${dir}: killed ${left.length} process group(s) the tests left running: ${left.join(', ')}\n`);
  // The pipe ends once nothing holds it; do not wait for ever on one that something outside the groups holds.
  // The pipe is often closed already when 'exit' comes; an unref'd timer alone would let node end with the await
  // unsettled (exit 13) and skip the rest of the run.
  if (!child.stdout.closed) {
    let timer;
    await Promise.race([
      new Promise((r) => child.stdout.once('close', r)),
      new Promise((r) => (timer = setTimeout(r, 5000))),
    ]);
    clearTimeout(timer);
  }
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tail)?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled');
  if (code !== 0 && count('fail') + count('cancelled') === 0) failed += 1; // crashed without reporting
  for (const problem of (await shared?.()) ?? []) {
    process.stdout.write(`# ${problem}\n`);
    failed += 1;
  }
}
rmSync(GROUPS, { recursive: true, force: true });
rmSync(PREFIXES, { recursive: true, force: true });
if (existsSync(SUMMARY)) {
  const rows = readFileSync(SUMMARY, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const cols = ['scenario', 'accepted', 'succeeded', 'lost', 'duplicated', 'missing', 'notEnded'];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(width[i]) : String(v).padStart(width[i]))).join('  ');
  process.stdout.write(`\nfault scenarios\n${line(cols)}\n${rows.map((r) => line(cols.map((c) => r[c]))).join('\n')}\n`);
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
