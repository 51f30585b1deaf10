import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { killTracked, spawnTracked } from './process-groups.js';
import { freePort } from './processes.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The name the sentinels know the primary by (the last part of the REDIS_URL). */
export const SENTINEL_PRIMARY_NAME = 'drover';

export interface LocalSentinelSet {
  primaryPort: number;
  replicaPort: number;
  sentinelPorts: number[];
  /** REDIS_URL for Drover: `redis+sentinel://127.0.0.1:<s1>,.../drover`. */
  url: string;
  /** The Redis processes (for kill -9 in failover tests). */
  primary: ChildProcess;
  replica: ChildProcess;
}

/**
 * A Redis primary, one replica and `sentinels` Sentinels (quorum 1, down after 1 s) of the test's own on loopback,
 * in a temp dir. Resolves once every sentinel names the primary, sees the replica and knows the other sentinels (so
 * a failover can start at once). Stopped, and its dir removed, after the test: register the services using it in a
 * subtest, so they close before their Redis goes.
 */
export async function startLocalSentinelSet(t: TestContext, sentinels = 1): Promise<LocalSentinelSet> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-sentinel-'));
  const processes: ChildProcess[] = [];
  t.after(() => {
    for (const p of processes) killTracked(p);
    rmSync(dir, { recursive: true, force: true });
  });
  const primaryPort = await freePort();
  const replicaPort = await freePort();
  const primary = startRedis(dir, primaryPort, []);
  processes.push(primary);
  await untilPing(primaryPort);
  const replica = startRedis(dir, replicaPort, ['--replicaof', '127.0.0.1', String(primaryPort)]);
  processes.push(replica);
  await untilPing(replicaPort);
  await untilReplicaInSync(primaryPort);
  const sentinelPorts: number[] = [];
  for (let i = 0; i < sentinels; i++) {
    const port = await freePort();
    sentinelPorts.push(port);
    processes.push(startSentinel(dir, port, primaryPort));
  }
  for (const port of sentinelPorts) await untilSentinelReady(port, primaryPort, sentinels - 1);
  const url = `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${SENTINEL_PRIMARY_NAME}`;
  return { primaryPort, replicaPort, sentinelPorts, url, primary, replica };
}

/** One redis-server with its own data dir, AOF and noeviction as Drover's shipped configs run it. */
function startRedis(dir: string, port: number, extraArgs: string[]): ChildProcess {
  const nodeDir = join(dir, String(port));
  mkdirSync(nodeDir);
  return spawnTracked('redis-server', [
    '--bind', '127.0.0.1', '--port', String(port), '--dir', nodeDir, '--appendonly', 'yes', '--appendfsync', 'everysec',
    '--save', '', '--maxmemory-policy', 'noeviction', ...extraArgs,
  ], { stdio: 'ignore' });
}

/** A Sentinel with a config file of its own (a sentinel rewrites it as it learns, so one file each). */
function startSentinel(dir: string, port: number, primaryPort: number): ChildProcess {
  const sentinelDir = join(dir, `sentinel-${port}`);
  mkdirSync(sentinelDir);
  const conf = join(sentinelDir, 'sentinel.conf');
  writeFileSync(conf, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${sentinelDir}`,
    `sentinel monitor ${SENTINEL_PRIMARY_NAME} 127.0.0.1 ${primaryPort} 1`,
    `sentinel down-after-milliseconds ${SENTINEL_PRIMARY_NAME} 1000`,
    `sentinel failover-timeout ${SENTINEL_PRIMARY_NAME} 3000`,
    '',
  ].join('\n'));
  return spawnTracked('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
}

function redisCli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout ?? '';
}

/** The primary's port as this sentinel names it now (undefined while it cannot say). */
export function primaryPortBySentinel(sentinelPort: number): number | undefined {
  const [host, port] = redisCli(sentinelPort, 'sentinel', 'get-master-addr-by-name', SENTINEL_PRIMARY_NAME).trim().split('\n');
  return host === '127.0.0.1' && port ? Number(port) : undefined;
}

/** Waits (30 s at most) until every sentinel names `port` as the primary: after a failover, the promoted replica. */
export async function untilSentinelsName(set: LocalSentinelSet, port: number): Promise<void> {
  for (const sentinel of set.sentinelPorts) {
    await within(30_000, `sentinel ${sentinel} to name ${port} the primary (it says ${primaryPortBySentinel(sentinel)})`, () => primaryPortBySentinel(sentinel) === port);
  }
  // The promoted replica takes writes once it left replica mode (the sentinel names it slightly before).
  await within(30_000, `${port} to report role:master`, () => /role:master/.test(redisCli(port, 'info', 'replication')));
}

async function within(ms: number, what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function untilPing(port: number): Promise<void> {
  await within(10_000, `redis-server on ${port} to start`, () => redisCli(port, 'ping').trim() === 'PONG');
}

async function untilReplicaInSync(primaryPort: number): Promise<void> {
  await within(30_000, 'the replica to sync', () => /slave0:.*state=online/.test(redisCli(primaryPort, 'info', 'replication')));
}

/** The sentinel names the primary, knows its replica and (with several sentinels) the others. */
async function untilSentinelReady(port: number, primaryPort: number, otherSentinels: number): Promise<void> {
  await within(30_000, `sentinel ${port} to name the primary, its replica and ${otherSentinels} other sentinels`, () => {
    if (primaryPortBySentinel(port) !== primaryPort) return false;
    const fields = redisCli(port, 'sentinel', 'master', SENTINEL_PRIMARY_NAME).trim().split('\n');
    const field = (name: string): number => Number(fields[fields.indexOf(name) + 1]);
    return field('num-slaves') >= 1 && field('num-other-sentinels') >= otherSentinels;
  });
}
