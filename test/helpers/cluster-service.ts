// `npm test -- --cluster` (TEST_REDIS=cluster): a Redis Cluster of the run's own (3 primaries, 3 replicas) for the
// end-to-end files. The harness reads one JSON line {"redisUrl"} from stdout, runs the files with REDIS_URL set to
// it, and closes this script's stdin after them. The nodes run in registered process groups, so a killed run's
// teardown ends them too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startRedisCluster } from '../../scripts/local-redis-cluster.js';
import { killTracked, spawnTracked } from './process-groups.js';

const dir = mkdtempSync(join(tmpdir(), 'drover-test-cluster-'));
const nodes: ChildProcess[] = [];

let closing = false;
function close(code: number): never {
  if (!closing) {
    closing = true;
    for (const p of nodes) killTracked(p);
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(code);
}
process.stdin.on('end', () => close(0));
process.stdin.on('error', () => close(0));
process.stdin.resume();

try {
  const cluster = await startRedisCluster(dir, 3, true, (args) => {
    const p = spawnTracked('redis-server', args, { stdio: 'ignore' });
    nodes.push(p);
    return p;
  });
  process.stdout.write(`${JSON.stringify({ redisUrl: cluster.url })}\n`);
} catch (err) {
  process.stderr.write(`the test cluster did not start: ${err instanceof Error ? err.stack : String(err)}\n`);
  close(1);
}
