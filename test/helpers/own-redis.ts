import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { killTracked, spawnTracked } from './process-groups.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A Redis of the test's own, with AOF (fsync every second) and noeviction, as Drover's shipped configs run it, plus
 * `extraArgs` (say `--maxmemory 64mb`). `start` may be called again after the server stopped (restart tests: the
 * same data dir is loaded again). `stop` is for the test's after-hooks, registered once the services using this
 * Redis are (so it stops last).
 */
export function ownRedis(port: number, dir: string, extraArgs: string[] = []): { start: () => Promise<ChildProcess>; stop: () => void } {
  let current: ChildProcess | undefined;
  return {
    stop: () => {
      if (current) killTracked(current);
    },
    start: async () => {
      // In a process group of its own, killed with the test file should the after-hooks never run.
      current = spawnTracked(
        'redis-server',
        ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', '', ...extraArgs],
        { stdio: 'ignore' },
      );
      for (let i = 0; ; i++) {
        const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        probe.on('error', () => undefined);
        const up = await probe.connect().then(() => probe.ping(), () => null);
        probe.disconnect();
        if (up) break;
        assert.ok(i < 100, 'redis-server did not start');
        await sleep(50);
      }
      return current;
    },
  };
}
