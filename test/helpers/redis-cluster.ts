import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Cluster } from 'ioredis';
import { killTracked, spawnTracked } from './process-groups.js';
import { freePort } from './processes.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LocalCluster {
  /** host:port of every node, primaries first. */
  nodes: string[];
  /** REDIS_URL for Drover: `redis+cluster://h1:p1,h2:p2,...`. */
  url: string;
  /** The node processes by port (for kill -9 in failover tests). */
  processes: Map<number, ChildProcess>;
}

/**
 * A Redis Cluster of the test's own on loopback: `primaries` primaries and as many replicas (one each), each a
 * redis-server in a temp dir with AOF (fsync every second), joined with `redis-cli --cluster create`. Stopped, and
 * its dir removed, after the test (also when it fails; the processes are in groups killed with the test file).
 */
export async function startLocalCluster(t: TestContext, primaries = 3, withReplicas = true): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-cluster-'));
  const count = primaries * (withReplicas ? 2 : 1);
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const processes = new Map<number, ChildProcess>();
  t.after(() => {
    for (const p of processes.values()) killTracked(p);
    rmSync(dir, { recursive: true, force: true });
  });
  for (const port of ports) {
    const nodeDir = join(dir, String(port));
    mkdirSync(nodeDir);
    processes.set(port, spawnTracked('redis-server', [
      '--bind', '127.0.0.1', '--port', String(port), '--dir', nodeDir, '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--appendonly', 'yes',
      '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction',
    ], { stdio: 'ignore' }));
  }
  for (const port of ports) await untilPing(port);
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', withReplicas ? '1' : '0', '--cluster-yes'], { encoding: 'utf8' });
  assert.equal(created.status, 0, `redis-cli --cluster create: ${created.stdout}${created.stderr}`);
  // Every slot served and every node agreeing takes a moment after create.
  for (let i = 0; ; i++) {
    const info = spawnSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'], { encoding: 'utf8' }).stdout;
    if (/cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info)) break;
    assert.ok(i < 200, `cluster not ok: ${info}`);
    await sleep(50);
  }
  await untilClusterClientReady(nodes);
  return { nodes, url: `redis+cluster://${nodes.join(',')}`, processes };
}

async function untilPing(port: number): Promise<void> {
  for (let i = 0; ; i++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return;
    assert.ok(i < 200, `redis-server on ${port} did not start`);
    await sleep(25);
  }
}

/** A cluster client sees every slot (a fresh cluster answers CLUSTERDOWN for a moment). */
async function untilClusterClientReady(nodes: string[]): Promise<void> {
  const client = new Cluster(nodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })), { lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    for (let i = 0; ; i++) {
      const ok = await client.set('{drover-cluster-probe}', '1').then(() => true, () => false);
      if (ok) break;
      assert.ok(i < 200, 'the cluster client never became ready');
      await sleep(50);
    }
    await client.del('{drover-cluster-probe}');
  } finally {
    client.disconnect();
  }
}

/** The port of the primary serving a key's slot, as the cluster says now. */
export async function primaryPortOf(cluster: LocalCluster, key: string): Promise<number> {
  const port = cluster.nodes[0]!.split(':')[1]!;
  const slot = Number(spawnSync('redis-cli', ['-p', port, 'cluster', 'keyslot', key], { encoding: 'utf8' }).stdout.trim());
  const client = new Cluster([{ host: '127.0.0.1', port: Number(port) }], { lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const ranges = await client.cluster('SLOTS');
    const range = ranges.find((r) => slot >= r[0] && slot <= r[1]);
    if (!range) throw new Error(`no primary serves slot ${slot}`);
    return range[2]![1];
  } finally {
    client.disconnect();
  }
}
