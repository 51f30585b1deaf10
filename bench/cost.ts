/**
 * Per-job cost, for the executor section: what Redis did (INFO commandstats and INFO cpu deltas, on a Redis of the
 * bench's own so nothing else is counted) and what each process spent on the CPU (/proc/<pid>/stat).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { redisTuningArgs } from '@drover/core';
import { freeLoopbackPort } from '../scripts/local-redis-cluster.js';

export interface RedisSnapshot {
  cpuSec: number;
  usedMemory: number;
  calls: Map<string, number>;
  /** Microseconds spent in each command (a script's calls count inside the script's own time too). */
  usec: Map<string, number>;
}

export async function redisSnapshot(redis: Redis): Promise<RedisSnapshot> {
  const [cpu, stats, memory] = await Promise.all([redis.info('cpu'), redis.info('commandstats'), redis.info('memory')]);
  const num = (text: string, name: string): number => Number(new RegExp(`${name}:([0-9.]+)`).exec(text)?.[1] ?? 0);
  const calls = new Map<string, number>();
  const usec = new Map<string, number>();
  for (const m of stats.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/g)) {
    calls.set(m[1]!, Number(m[2]));
    usec.set(m[1]!, Number(m[3]));
  }
  return { cpuSec: num(cpu, 'used_cpu_user') + num(cpu, 'used_cpu_sys'), usedMemory: num(memory, 'used_memory'), calls, usec };
}

export interface RedisCost {
  cpuMsPerJob: number;
  commandsPerJob: number;
  bytesPerJob: number;
  /** Commands per job by name, most first, with the microseconds per job spent in them. */
  byCommand: [string, number, number][];
}

/** `own`: commands the bench sent itself between the snapshots, by name (taken off). */
export function redisCost(before: RedisSnapshot, after: RedisSnapshot, jobs: number, own: Map<string, number> = new Map()): RedisCost {
  const byCommand: [string, number, number][] = [];
  for (const [name, n] of after.calls) {
    const d = n - (before.calls.get(name) ?? 0) - (own.get(name) ?? 0);
    // INFO is the bench's own snapshot, left out by name; its polls come off through `own`.
    const us = (after.usec.get(name) ?? 0) - (before.usec.get(name) ?? 0);
    if (d > 0 && name !== 'info') byCommand.push([name, d / jobs, us / jobs]);
  }
  byCommand.sort((a, b) => b[1] - a[1]);
  return {
    cpuMsPerJob: ((after.cpuSec - before.cpuSec) * 1000) / jobs,
    commandsPerJob: byCommand.reduce((s, [, n]) => s + n, 0),
    bytesPerJob: (after.usedMemory - before.usedMemory) / jobs,
    byCommand,
  };
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** Medians, field by field, of several rounds' costs (the per-command list is the median round's by CPU). */
export function medianCost(costs: RedisCost[]): RedisCost {
  const mid = <T>(xs: T[], by: (x: T) => number): T => [...xs].sort((a, b) => by(a) - by(b))[Math.floor(xs.length / 2)]!;
  return {
    cpuMsPerJob: mid(costs, (c) => c.cpuMsPerJob).cpuMsPerJob,
    commandsPerJob: mid(costs, (c) => c.commandsPerJob).commandsPerJob,
    bytesPerJob: mid(costs, (c) => c.bytesPerJob).bytesPerJob,
    byCommand: mid(costs, (c) => c.cpuMsPerJob).byCommand,
  };
}

/** CPU ms a process spent itself, and on its reaped children (the spawner's children are the jobs). */
export function procCpu(pid: number): { self: number; children: number } {
  try {
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { self: (Number(f[11]) + Number(f[12])) * TICK_MS, children: (Number(f[13]) + Number(f[14])) * TICK_MS };
  } catch {
    return { self: 0, children: 0 };
  }
}

/** Direct children of a process (the runner's spawner helper). */
export function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/**
 * A redis-server of the bench's own on a free loopback port, nothing on disk, tuned as the shipped setups are
 * (REDIS_TUNING), started with `spawnServer` (the bench's tracked spawn, so it dies with the bench); stop() ends it
 * and removes its directory.
 */
export async function ownRedis(spawnServer: (args: string[]) => ChildProcess): Promise<{ url: string; port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-bench-redis-'));
  const port = await freeLoopbackPort();
  const proc = spawnServer(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...redisTuningArgs()]);
  for (let i = 0; ; i++) {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined); // refused until the server listens
    const up = await probe.connect().then(() => probe.ping(), () => null);
    probe.disconnect();
    if (up) break;
    if (i >= 100 || proc.exitCode !== null) throw new Error(`the bench's redis-server on port ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await once(proc, 'exit');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
