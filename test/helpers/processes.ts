import type { ChildProcess, SpawnOptions, StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';
import { killTracked, spawnTracked } from './process-groups.js';
import { AMQP_URL, REDIS_URL, TEST_CALLBACK_SECRET } from './stack.js';

export { killTracked, spawnTracked };

const ROOT = new URL('../..', import.meta.url).pathname;

/**
 * `drover <args>` from source as a real process (as another user with `as`), in a process group of its own; the
 * group is killed with SIGKILL after the test.
 */
export function spawnDrover(t: TestContext, args: string[], env: NodeJS.ProcessEnv, stdio: StdioOptions, as: Pick<SpawnOptions, 'uid' | 'gid'> = {}): ChildProcess {
  const child = spawnTracked(process.execPath, ['--conditions=drover-src', '--import', 'tsx', 'cli/src/main.ts', ...args], { cwd: ROOT, env, stdio, ...as });
  t.after(() => killTracked(child));
  return child;
}

function spawnService(t: TestContext, service: string, prefix: string, env: Record<string, string>, stdout: 'inherit' | 'pipe'): ChildProcess {
  return spawnDrover(t, [service], { PATH: process.env.PATH, REDIS_URL, AMQP_URL, DROVER_PREFIX: prefix, DROVER_LOG_LEVEL: 'error', DROVER_METRICS_PORT: '0', DROVER_CALLBACK_SECRET: TEST_CALLBACK_SECRET, ...env }, ['ignore', stdout, 'inherit']);
}

/** A Drover service as its own process (from source), killed with SIGKILL after the test if still running. */
export function startService(t: TestContext, service: 'api' | 'scheduler' | 'runner', prefix: string, env: Record<string, string> = {}): ChildProcess {
  return spawnService(t, service, prefix, env, 'inherit');
}

/** Starts a service and resolves once it logged that it started (its log goes to this process's stderr). */
export async function startServiceReady(t: TestContext, service: 'scheduler' | 'runner', prefix: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawnService(t, service, prefix, { DROVER_LOG_LEVEL: 'info', ...env }, 'pipe');
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes(`"msg":"${service} started"`)) resolve();
      if (buf.length > 1_000_000) buf = buf.slice(-1000);
    });
    child.once('exit', (code) => reject(new Error(`${service} exited with ${code} before it started`)));
  });
  return child;
}

/** A TCP port free on loopback right now. */
export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  return port;
}
