import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { redisTuningArgs } from '@drover/core';

async function reachable(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1500 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const HOW_TO_GET_REDIS = [
  'Drover needs Redis and none answers at REDIS_URL, nor is redis-server installed to start one.',
  'Get one of:',
  '  - Debian/Ubuntu: sudo apt-get install redis-server   (then run npm start again)',
  '  - macOS: brew install redis',
  '  - Docker: docker compose up -d redis   (from this repository)',
  'or point REDIS_URL at a Redis you already run.',
].join('\n');

export interface LocalRedis {
  /** Present when Drover started its own Redis, which `stop` ends. */
  child?: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The all-in-one's Redis: use the one at `url` when it answers; otherwise, for a loopback URL with redis-server
 * installed, start one with its data (AOF, fsync every second, no eviction) under `<dataDir>/redis`.
 */
export async function ensureRedis(url: string, dataDir: string, log: (msg: string) => void): Promise<LocalRedis> {
  if (await reachable(url)) return { stop: async () => undefined };
  const parsed = new URL(url);
  const loopback = ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(parsed.hostname);
  const found = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!loopback || !found) throw new Error(HOW_TO_GET_REDIS);
  const dir = resolve(dataDir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const port = parsed.port || '6379';
  log(`starting redis-server on 127.0.0.1:${port} with its data in ${dir}`);
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', port, '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec',
      '--maxmemory-policy', 'noeviction', '--save', '', '--daemonize', 'no', ...redisTuningArgs()],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  while (!(await reachable(url))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
