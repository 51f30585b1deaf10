import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { killTracked, spawnTracked } from './process-groups.js';
import { freePort } from './processes.js';
import { alive } from './stack.js';
import { until } from './until.js';

const run = promisify(execFile);

// Debian's rabbitmq-server and rabbitmqctl in /usr/sbin switch to the rabbitmq user, its home and so the default
// node's cookie; the scripts behind them run as whoever calls them, with the environment given here.
const BIN = existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server') ? '/usr/lib/rabbitmq/bin/' : '';
// Erlang distribution (the node's and rabbitmqctl's) listens on loopback only.
const LOOPBACK_DIST = '-kernel inet_dist_use_interface {127,0,0,1}';
const START_TIMEOUT_MS = 60_000;
const CTL_TIMEOUT_MS = 60_000;

export interface OwnRabbitMQ {
  /** amqp://guest:guest@127.0.0.1:<port> of this node. */
  readonly url: string;
  /** Its Erlang node name, `drover-test-<id>@localhost`. */
  readonly node: string;
  /** OS pid of its Erlang VM (beam.smp). */
  readonly pid: number;
  /** `rabbitmqctl stop_app`: the broker closes every connection and stops listening; the VM keeps running. */
  stopApp(): Promise<void>;
  /** `rabbitmqctl start_app`, then waits until the broker accepts AMQP connections again. */
  startApp(): Promise<void>;
  /** Kills the node and its epmd by pid and removes its directory; idempotent. Registered with `t.after`. */
  close(): Promise<void>;
}

/**
 * A RabbitMQ node of the test's own, for tests that stop and start the broker (the shared one is never touched):
 * its own name, ports, epmd, cookie, data, logs and an empty plugin list (no management listener), all in a temp
 * dir. Resolves once it accepts AMQP connections as guest. Its cleanup is registered with `t.after` at once, so it
 * runs on failure and cancellation too, and before the after-hooks registered later: the stack's teardown then
 * meets a broker that is gone, which its close() shrugs off.
 */
export async function startOwnRabbitMQ(t: TestContext): Promise<OwnRabbitMQ> {
  return startRabbitNode((close) => t.after(close));
}

/**
 * The node itself, for a test or for the fault phase's shared-for-the-phase broker (test/helpers/fault-services.ts).
 * `onClose` receives the cleanup as soon as there is something to clean up; should the start fail, the cleanup has
 * run by the time the error is thrown.
 */
export async function startRabbitNode(onClose: (close: () => Promise<void>) => void = () => undefined): Promise<OwnRabbitMQ> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-rabbitmq-'));
  const node = `drover-test-${randomUUID().slice(0, 8)}@localhost`;
  const port = portPicker();
  const [amqpPort, distPort, epmdPort, ctlPort] = [await port(), await port(), await port(), await port()];
  const url = `amqp://guest:guest@127.0.0.1:${amqpPort}`;
  const home = join(dir, 'home');
  mkdirSync(home);
  writeFileSync(join(home, '.erlang.cookie'), randomBytes(24).toString('hex'), { mode: 0o400 });
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  // Empty on purpose: without these files of its own the node would read the system's (the shared node's name,
  // listeners and plugins).
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  writeFileSync(join(dir, 'rabbitmq.conf'), '');
  const common = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ERL_EPMD_PORT: String(epmdPort), RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf') };
  const nodeEnv = {
    ...common,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_CONFIG_FILES: join(dir, 'conf.d'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, 'plugins-expand'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: join(dir, 'node.pid'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: LOOPBACK_DIST,
  };
  // rabbitmqctl runs an Erlang node of its own, listening on 35672-35682 unless told otherwise: one port of ours.
  const ctlEnv = { ...common, RABBITMQ_CTL_DIST_PORT_MIN: String(ctlPort), RABBITMQ_CTL_DIST_PORT_MAX: String(ctlPort), RABBITMQ_CTL_ERL_ARGS: LOOPBACK_DIST };

  const procs: { epmd?: ChildProcess; server?: ChildProcess; beam?: number } = {};
  let output = '';
  // Synchronous, so that it also serves as the process's exit handler should the after-hooks never run. The VM
  // is found below rabbitmq-server, or by its pid once known (should the script have died first).
  const killAll = (): number[] => {
    const running = (c: ChildProcess | undefined): number | undefined => (c && c.exitCode === null && c.signalCode === null ? c.pid : undefined);
    const tree = (root: number | undefined): number[] => (root !== undefined && alive(root) ? [root, ...descendants(root)] : []);
    const pids = [...new Set([...tree(running(procs.server)), ...tree(procs.beam), ...tree(running(procs.epmd))])];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    return pids;
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      process.off('exit', killAll);
      const pids = killAll();
      for (const c of [procs.server, procs.epmd]) if (c) killTracked(c);
      await until(`the private RabbitMQ node's processes (${pids.join(', ')}) to exit`, () => pids.every((p) => !alive(p)), 10_000);
      rmSync(dir, { recursive: true, force: true });
    })();
    return closing;
  };
  process.once('exit', killAll);
  onClose(close);

  const ctl = async (...args: string[]): Promise<void> => {
    await run(`${BIN}rabbitmqctl`, ['-q', '-n', node, ...args], { env: ctlEnv, timeout: CTL_TIMEOUT_MS });
  };
  const acceptsAmqp = async (what: string): Promise<void> => {
    await until(
      what,
      async () => {
        const { server } = procs;
        if (!server || server.exitCode !== null || server.signalCode !== null) throw new Error(`rabbitmq-server exited: ${output}${logTail(dir, node)}`);
        const conn = await amqp.connect(url).catch(() => undefined);
        await conn?.close().catch(() => undefined);
        return conn !== undefined;
      },
      START_TIMEOUT_MS,
      100,
    );
  };

  // An epmd of its own (in the foreground, so its pid is ours); up before the node, or erl would start one itself.
  // Both in process groups of their own, registered so a killed test file's teardown ends them too.
  procs.epmd = spawnTracked('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: 'ignore' });
  await until(`epmd to listen on port ${epmdPort}`, () => listening(epmdPort), 10_000);
  const server = (procs.server = spawnTracked(`${BIN}rabbitmq-server`, [], { env: nodeEnv, stdio: ['ignore', 'pipe', 'pipe'] }));
  const keep = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-4000));
  server.stdout!.on('data', keep);
  server.stderr!.on('data', keep);
  await acceptsAmqp(`the private RabbitMQ node ${node} to accept AMQP connections`);
  const pid = Number(readFileSync(join(dir, 'node.pid'), 'utf8').trim());
  // Only a VM started under our rabbitmq-server is ever killed: a pid file pointing elsewhere is a bug.
  assert.ok(ancestors(pid).includes(server.pid!), `pid ${pid} from the node's pid file is not below the rabbitmq-server started here`);
  procs.beam = pid;
  return {
    url,
    node,
    pid,
    stopApp: () => ctl('stop_app'),
    startApp: async () => {
      await ctl('start_app');
      await acceptsAmqp(`the private RabbitMQ node ${node} to accept AMQP connections after start_app`);
    },
    close,
  };
}

async function listening(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    return await new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true)).once('error', () => resolve(false)));
  } finally {
    socket.destroy();
  }
}

/** Hands out distinct free loopback ports, none that the default node or a rabbitmqctl run against it would take. */
function portPicker(): () => Promise<number> {
  const reserved = (p: number): boolean => [4369, 5672, 25672].includes(p) || (p >= 35672 && p <= 35682);
  const given = new Set<number>();
  return async () => {
    for (;;) {
      const p = await freePort();
      if (reserved(p) || given.has(p)) continue;
      given.add(p);
      return p;
    }
  };
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function ancestors(pid: number): number[] {
  const up: number[] = [];
  for (let p = parentOf(pid); p !== undefined && p > 1 && up.length < 10; p = parentOf(p)) up.push(p);
  return up;
}

/** Every process below `pid` (erl_child_setup runs the VM's port programs, each in a session of its own). */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (p: number): void => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let children = '';
      try {
        children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
      } catch {
        continue;
      }
      for (const c of children ? children.split(/\s+/).map(Number) : []) {
        found.push(c);
        visit(c);
      }
    }
  };
  visit(pid);
  return found;
}

function logTail(dir: string, node: string): string {
  try {
    return `\n${readFileSync(join(dir, 'log', `${node}.log`), 'utf8').slice(-3000)}`;
  } catch {
    return '';
  }
}

/**
 * Watches a broker the test must leave alone (the shared one): a connection opened now must still be open and
 * serving at the end, and, where this process can see it, the OS process listening on the broker's port must be
 * the same. `stop_app` closes every connection; a restart changes the process.
 */
export async function watchBroker(t: TestContext, url: string): Promise<{ assertUntouched: () => Promise<void> }> {
  const conn = await amqp.connect(url);
  let closed: string | undefined;
  conn.on('error', () => undefined);
  conn.on('close', (err?: Error) => void (closed = err ? err.message : 'closed'));
  t.after(() => conn.close().catch(() => undefined));
  const { hostname, port: p } = new URL(url);
  const port = Number(p || 5672);
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
  const pid = local ? listenerPid(port) : undefined;
  return {
    assertUntouched: async () => {
      assert.equal(closed, undefined, `the broker at ${hostname}:${port} closed a connection opened before the test`);
      const ch = await conn.createChannel();
      await ch.checkExchange('amq.direct');
      await ch.close();
      if (pid !== undefined) assert.equal(listenerPid(port), pid, `another process listens on ${hostname}:${port} now: the broker was restarted`);
    },
  };
}

/** The pid of the process listening on a loopback TCP port, from /proc (undefined if it cannot be read). */
function listenerPid(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address:port (hex), f[3] state (0A = LISTEN), f[9] socket inode
      if (f[3] === '0A' && parseInt(f[1]?.split(':')[1] ?? '', 16) === port && f[9]) inodes.add(`socket:[${f[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}
