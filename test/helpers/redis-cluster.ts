import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { primaryPortOf as primaryOf, startRedisCluster, type RedisClusterNodes } from '../../scripts/local-redis-cluster.js';
import { killTracked, spawnTracked } from './process-groups.js';

export type LocalCluster = RedisClusterNodes;

/**
 * A Redis Cluster of the test's own on loopback: `primaries` primaries and, with `withReplicas`, one replica each
 * (scripts/local-redis-cluster.ts). Its nodes run in process groups killed with the test file; they are stopped and
 * their dir removed after the test.
 */
export async function startLocalCluster(t: TestContext, primaries = 3, withReplicas = true): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-cluster-'));
  const started: ReturnType<typeof spawnTracked>[] = [];
  t.after(() => {
    for (const p of started) killTracked(p);
    rmSync(dir, { recursive: true, force: true });
  });
  return startRedisCluster(dir, primaries, withReplicas, (args) => {
    const p = spawnTracked('redis-server', args, { stdio: 'ignore' });
    started.push(p);
    return p;
  });
}

/** The port of the primary serving a key's slot. */
export function primaryPortOf(cluster: LocalCluster, key: string): Promise<number> {
  return primaryOf(cluster.nodes, key);
}
