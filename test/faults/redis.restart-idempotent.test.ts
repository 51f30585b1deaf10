import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { record } from '../helpers/audit.js';
import { jobTempDir } from '../helpers/job-dir.js';
import { ownRedis } from '../helpers/own-redis.js';
import { freePort, startService, startServiceReady } from '../helpers/processes.js';
import { startStack } from '../helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Clients that retry as the Idempotency-Key invites them to: every submission carries a key of its own and is sent
 * again, with the same key, after a 503, any 5xx, a timeout or a reset connection, until it is accepted. Meanwhile
 * Redis is restarted and the API killed with SIGKILL (and started again), while every submission is held a little
 * between persisting and publishing (the fault hook), so both faults land inside that window. Each execution leaves
 * a marker named after its key. A control phase sends the same load without keys and counts the doubles it gets.
 */

interface Load {
  /** Logical submission (its key, or its marker name without one) -> the job id of the answer that accepted it. */
  accepted: Map<string, string>;
  statuses: Map<string, number>;
  replayed: number;
  done: Promise<void>;
}

function clients(url: string, token: string, names: string[], command: (name: string) => string, keyed: boolean): Load {
  const load: Load = { accepted: new Map(), statuses: new Map(), replayed: 0, done: Promise.resolve() };
  const count = (k: string): void => void load.statuses.set(k, (load.statuses.get(k) ?? 0) + 1);
  const queue = [...names];
  const client = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      for (;;) {
        try {
          const res = await fetch(`${url}/v1/jobs`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(keyed ? { 'idempotency-key': name } : {}) },
            body: JSON.stringify({ queue: keyed ? 'idem' : 'plain', command: command(name) }),
            signal: AbortSignal.timeout(10_000),
          });
          count(String(res.status));
          const body = (await res.json()) as { id?: string };
          if (res.status === 201) {
            load.accepted.set(name, body.id!);
            if (res.headers.get('idempotent-replayed') === 'true') load.replayed++;
            break;
          }
          if (res.status < 500) throw new Error(`${name}: ${res.status} ${JSON.stringify(body)}`);
        } catch (err) {
          if ((err as Error).message.startsWith(`${name}:`)) throw err;
          count((err as Error).name === 'TimeoutError' ? 'timeout' : 'network');
        }
        await sleep(100);
      }
    }
  };
  load.done = Promise.all(Array.from({ length: 10 }, client)).then(() => undefined);
  return load;
}

/** Executions per logical submission, and the distinct job ids that ran for it (from the markers). */
function markers(dir: string): Map<string, string[]> {
  const runs = new Map<string, string[]>();
  for (const f of readdirSync(dir)) {
    const name = f.slice(0, f.lastIndexOf('.'));
    runs.set(name, [...(runs.get(name) ?? []), readFileSync(join(dir, f), 'utf8').trim()]);
  }
  return runs;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(100);
  }
}

test('Redis restarted and the API killed while clients retry with Idempotency-Key: every key accepted and run exactly once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-redis-idem-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const redis = ownRedis(port, dir);
  let server = await redis.start();
  const redisUrl = `redis://127.0.0.1:${port}`;
  // In-process: the scheduler (its outbox sweep publishes what a killed or refused request stored) and an API to audit through.
  const s = await startStack(t, { redisUrl, runner: false, env: { SCHEDULER_REPUBLISH_AFTER_MS: '1000' } }).catch((err: unknown) => {
    redis.stop();
    throw err;
  });
  const env = { REDIS_URL: redisUrl, RUNNER_CONCURRENCY: '8', RUNNER_QUEUES: 'idem,plain' };
  await Promise.all([startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'ri-a' }), startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'ri-b' })]);

  // The API the clients talk to, as a process of its own so it can be killed.
  const token = randomBytes(24).toString('base64url');
  const apiPort = await freePort();
  const url = `http://127.0.0.1:${apiPort}`;
  const startApi = async (): Promise<ChildProcess> => {
    const child = startService(t, 'api', s.prefix, {
      REDIS_URL: redisUrl,
      DROVER_ADMIN_TOKEN: token,
      DROVER_PORT: String(apiPort),
      DROVER_RATE_LIMIT: '0',
      DROVER_ENABLE_FAULT_HOOKS: '1',
      DROVER_FAULT_PUBLISH_DELAY_MS: '100',
    });
    await until('the API answers', () => fetch(`${url}/healthz`).then((r) => r.ok, () => false), 30_000);
    return child;
  };
  let api = await startApi();
  t.after(() => redis.stop()); // after-hooks run in order: this Redis goes after the services using it
  const admin = new Redis(port, '127.0.0.1', { retryStrategy: () => 200, maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
  t.after(() => admin.disconnect());

  const restartRedis = async (): Promise<void> => {
    const exited = once(server, 'exit');
    // SHUTDOWN flushes the AOF; the same data dir is loaded again on restart.
    await admin.shutdown().catch(() => undefined);
    await exited;
    await sleep(1500);
    server = await redis.start();
  };
  const killApi = async (): Promise<void> => {
    const exited = once(api, 'exit');
    api.kill('SIGKILL');
    await exited;
    await sleep(300);
    api = await startApi();
  };
  /** Runs the load, restarting Redis at a third of it and killing the API at two thirds. */
  const phase = async (keyed: boolean, total: number): Promise<{ load: Load; runs: Map<string, string[]>; queue: string; names: string[] }> => {
    const marks = jobTempDir(t, 'drover-idem-markers-');
    const names = Array.from({ length: total }, (_, i) => `${keyed ? 'k' : 'c'}-${i}-${randomUUID().slice(0, 8)}`);
    const load = clients(url, token, names, (name) => `echo "$DROVER_JOB_ID" > "$(mktemp ${marks}/${name}.XXXXXXXX)"`, keyed);
    await until('a third is accepted', async () => load.accepted.size >= total / 3);
    await restartRedis();
    await until('two thirds are accepted', async () => load.accepted.size >= (2 * total) / 3);
    await killApi();
    await load.done;
    const queue = keyed ? 'idem' : 'plain';
    // Everything stored ends, the doubles too: nothing of the queue left waiting or running.
    await until(`queue ${queue} is idle`, async () => {
      const busy = await Promise.all(['queued', 'delayed', 'running'].map((st) => admin.zcard(`{${s.prefix}}:idx:qs:${queue}:${st}`)));
      return busy.every((n) => n === 0) && load.accepted.size === total;
    });
    return { load, runs: markers(marks), queue, names };
  };

  const keyed = await phase(true, 300);
  const stored = await admin.zcard(`{${s.prefix}}:idx:q:idem`);
  const accepted = [...keyed.load.accepted.values()];
  const doubled = keyed.names.filter((n) => (keyed.runs.get(n)?.length ?? 0) > 1);
  const missing = keyed.names.filter((n) => !keyed.runs.has(n));
  const foreign = keyed.names.filter((n) => (keyed.runs.get(n) ?? []).some((id) => id !== keyed.load.accepted.get(n)));
  const statuses = JSON.stringify(Object.fromEntries(keyed.load.statuses));
  record({ scenario: 'Redis restart + API kill -9, clients retrying with Idempotency-Key', accepted: accepted.length, succeeded: keyed.names.length - missing.length, lost: 0, duplicated: doubled.length, missing: missing.length });

  // Control: the same faults, clients retrying without a key. Not asserted (a fast run may double nothing).
  const control = await phase(false, 150);
  const controlStored = await admin.zcard(`{${s.prefix}}:idx:q:plain`);
  const controlDoubled = control.names.filter((n) => (control.runs.get(n)?.length ?? 0) > 1).length;
  t.diagnostic(`keyed: ${statuses}; ${keyed.load.replayed} answers were replays; ${stored} jobs stored for ${keyed.names.length} keys`);
  t.diagnostic(`control without keys: ${JSON.stringify(Object.fromEntries(control.load.statuses))}; ${controlStored} jobs stored for ${control.names.length} submissions, ${controlDoubled} ran more than once`);

  assert.ok((keyed.load.statuses.get('503') ?? 0) + (keyed.load.statuses.get('network') ?? 0) > 0, `the faults reached the clients: ${statuses}`);
  assert.equal(new Set(accepted).size, keyed.names.length, 'one job per key');
  assert.equal(stored, keyed.names.length, 'no job was stored twice for a key');
  assert.deepEqual([doubled.length, missing.length, foreign.length], [0, 0, 0], `doubled ${doubled.join(',')}; missing ${missing.join(',')}; ran under another id ${foreign.join(',')}`);
});
