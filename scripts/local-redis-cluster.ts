// A Redis Cluster on loopback for the tests and the bench (test/helpers/redis-cluster.ts, bench/cluster-bench.ts):
// redis-server nodes in a directory given, joined with `redis-cli --cluster create`. Who spawns the nodes (and so
// who stops them) is the caller's: the tests track them in process groups, the bench in its own list.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Cluster } from 'ioredis';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RedisClusterNodes {
  /** host:port of every node. */
  nodes: string[];
  /** REDIS_URL for Drover: `redis+cluster://h1:p1,h2:p2,...`. */
  url: string;
  /** The node processes by port (for kill -9 in failover tests). */
  processes: Map<number, ChildProcess>;
  /** Each node's log file, by port: what a test prints when the cluster misbehaves. */
  logs: Map<number, string>;
}

/** Whether a TCP server can listen on the loopback port now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A cluster node also listens on its port + 10000, its bus; redis-server refuses a port above 55535. */
const CLUSTER_BUS_OFFSET = 10_000;

/** A port the kernel hands out for listen(0) on loopback (free now). */
async function anyFreePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A port free on loopback now whose cluster bus port (+10000) is free too. After a load test had filled the lower
 * half of the ephemeral range, listen(0) gave a port above 55535, where a cluster node refuses to start: such a port
 * is passed over.
 */
export async function freeLoopbackPort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = await anyFreePort();
    if (port + CLUSTER_BUS_OFFSET <= 65_535 && (await canListen(port + CLUSTER_BUS_OFFSET))) return port;
  }
  throw new Error('no free loopback port with a free cluster bus port found');
}

/**
 * Starts `primaries` primaries (and one replica each when `replicas`), each with AOF (fsync every second) and
 * noeviction in a directory of its own under `dir`, and waits until every slot is served and a cluster client
 * can write. `spawnNode` starts one redis-server.
 */
export async function startRedisCluster(dir: string, primaries: number, replicas: boolean, spawnNode: (args: string[]) => ChildProcess): Promise<RedisClusterNodes> {
  const ports: number[] = [];
  for (let i = 0; i < primaries * (replicas ? 2 : 1); i++) ports.push(await freeLoopbackPort());
  const processes = new Map<number, ChildProcess>();
  const logs = new Map<number, string>();
  for (const port of ports) {
    const nodeDir = join(dir, String(port));
    mkdirSync(nodeDir, { recursive: true });
    logs.set(port, join(nodeDir, 'redis.log'));
    processes.set(port, spawnNode([
      '--bind', '127.0.0.1', '--port', String(port), '--dir', nodeDir, '--logfile', logs.get(port)!, '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--appendonly', 'yes',
      '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction',
    ]));
  }
  for (const port of ports) {
    await until(`redis-server on ${port} answers`, () => {
      const node = processes.get(port)!;
      if (node.exitCode !== null || node.signalCode !== null) throw new Error(`redis-server on ${port} exited (${node.exitCode ?? node.signalCode}) before it answered`);
      return cli(port, 'ping') === 'PONG';
    });
  }
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', replicas ? '1' : '0', '--cluster-yes'], { encoding: 'utf8' });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`);
  // Every slot served and every node agreeing takes a moment after create.
  await until('cluster_state:ok', () => /cluster_state:ok/.test(cli(ports[0]!, 'cluster', 'info')) && /cluster_slots_ok:16384/.test(cli(ports[0]!, 'cluster', 'info')));
  await untilClientCanWrite(nodes);
  return { nodes, url: `redis+cluster://${nodes.join(',')}`, processes, logs };
}

function cli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
}

async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; !(await ok()); i++) {
    if (i > 400) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A fresh cluster answers CLUSTERDOWN for a moment after every node says ok. */
async function untilClientCanWrite(nodes: string[]): Promise<void> {
  const client = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await until('a cluster client can write', () => client.set('{drover-cluster-probe}', '1').then(() => true, () => false));
    await client.del('{drover-cluster-probe}');
  } finally {
    client.disconnect();
  }
}

/** The port of the primary serving a key's slot, as the cluster says now. */
export async function primaryPortOf(nodes: string[], key: string): Promise<number> {
  const port = Number(nodes[0]!.split(':')[1]);
  const slot = Number(cli(port, 'cluster', 'keyslot', key));
  const client = new Cluster([{ host: '127.0.0.1', port }], { lazyConnect: true });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const range = (await client.cluster('SLOTS')).find((r) => slot >= r[0] && slot <= r[1]);
    if (!range) throw new Error(`no primary serves slot ${slot}`);
    return range[2]![1];
  } finally {
    client.disconnect();
  }
}
