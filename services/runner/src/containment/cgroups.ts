import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdir, open, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger, ResourceUsage } from '@drover/core';
import type { JobResources } from '../executor.js';
import { hostLock, type HostLock } from './host-lock.js';
import { findHierarchies, type Hierarchy } from './hierarchies.js';

/** The controllers Drover limits and measures an attempt with, and which hierarchy provides each. */
export interface Controllers {
  memory: 1 | 2 | null;
  cpu: 1 | 2 | null;
  pids: 1 | 2 | null;
}

/** One directory of an attempt's cgroup, in one hierarchy. */
export interface AttemptDir {
  version: 1 | 2;
  dir: string;
  /** The v1 controller this directory is for (a v2 directory serves every v2 controller). */
  controller?: keyof Controllers;
}

export interface AttemptStats {
  usage: Partial<ResourceUsage>;
  oomKilled: boolean;
}

const CPU_PERIOD_US = 100_000;
/** Under the runner's cgroup: `drover/<runner>/<attempt>`; whatever is under `drover/` belongs to some runner. */
const TOP = 'drover';

const exists = async (path: string): Promise<boolean> => {
  try {
    await (await open(path, 'r')).close();
    return true;
  } catch {
    return false;
  }
};

/** `key value` lines (memory.events, cpu.stat, memory.oom_control) -> one value, or undefined. */
export function statValue(text: string, key: string): number | undefined {
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined) return Number(v);
  }
  return undefined;
}

// Per-attempt cgroupfs calls are synchronous: they are in-kernel and take microseconds, while each promise-API call
// costs a thread-pool round trip, which under a throughput run was a large share of the runner's busy time.
const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** A name safe as one path component of a cgroup. */
export function cgroupName(label: string): string {
  return label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 200) || 'job';
}

/**
 * The runner's cgroups: one directory per attempt under `drover/<runner>/` in each usable hierarchy, made before
 * the spawn and joined by the child before exec (the spawner helper writes it into cgroup.procs), so every process
 * of the attempt is in it from its first instruction. The v2 directory (or, without v2, a v1 one) is what kills
 * the attempt whole; the v1 memory/pids/cpu directories carry limits where those controllers live in v1.
 */
export class RunnerCgroups {
  private constructor(
    /** One directory per hierarchy in use: this runner's own, `<hierarchy>/…/drover/<runner>`. */
    readonly roots: { hierarchy: Hierarchy; dir: string; controller?: keyof Controllers }[],
    readonly controllers: Controllers,
    private readonly lock: HostLock,
    private readonly log: Logger,
  ) {}

  /** What the runner registry and /readyz show. */
  get mode(): string {
    const versions = new Set(this.roots.map((r) => r.hierarchy.version));
    if (versions.size === 2) return 'cgroup2+cgroup1';
    return versions.has(2) ? 'cgroup2' : 'cgroup1';
  }

  /** The directories the guard kills on the helper's death: `<version>:<dir>`. */
  get guardArgs(): string[] {
    const v2 = this.roots.find((r) => r.hierarchy.version === 2);
    const kill = v2 ? [v2] : this.roots.filter((r) => r.controller === 'pids' || r.controller === 'memory').slice(0, 1);
    return kill.flatMap((r) => ['--cgroup', `${r.hierarchy.version}:${r.dir}`]);
  }

  /**
   * Finds the hierarchies this process may make cgroups in, claims `drover/<runnerId>` in each and kills what
   * runners of this host that are gone left in theirs. Undefined when no hierarchy is writable (not root, no
   * delegation): jobs are then contained by process group (and their own uid) only.
   */
  static async open(runnerId: string, log: Logger, setting: string = 'auto'): Promise<RunnerCgroups | undefined> {
    if (setting === 'off') return undefined;
    // A suffix of its own: runners started with the same RUNNER_ID (one per process in tests) never share a cgroup.
    const name = `${cgroupName(runnerId)}.${Math.random().toString(36).slice(2, 8)}`;
    const lock = await hostLock(`cgroup-${name}`);
    if (!lock) throw new Error(`the runner cgroup name ${name} is taken on this host`);
    try {
      const hierarchies = await findHierarchies(setting === 'auto' ? undefined : setting);
      if (setting !== 'auto' && !hierarchies.some((h) => h.version === 2)) {
        throw new Error(`RUNNER_CGROUP=${setting} is not a cgroup v2 directory this runner can read (no cgroup.controllers there)`);
      }
      const roots: RunnerCgroups['roots'] = [];
      const controllers: Controllers = { memory: null, cpu: null, pids: null };
      const v2 = hierarchies.find((h) => h.version === 2);
      if (v2) {
        const enabled = await enableV2Controllers(v2, log);
        const dir = await makeRunnerDir(v2.dir, name, enabled);
        if (dir) {
          roots.push({ hierarchy: v2, dir });
          for (const c of enabled) controllers[c] = 2;
        }
      }
      for (const controller of ['memory', 'pids', 'cpu'] as const) {
        if (controllers[controller]) continue;
        const h = hierarchies.find((x) => x.version === 1 && x.controllers.has(controller));
        if (!h) continue;
        const dir = await makeRunnerDir(h.dir, name, []);
        if (!dir) continue;
        roots.push({ hierarchy: h, dir, controller });
        controllers[controller] = 1;
      }
      if (roots.length === 0) {
        lock.release();
        return undefined;
      }
      const cgroups = new RunnerCgroups(roots, controllers, lock, log);
      await cgroups.killLeftovers();
      return cgroups;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /** Makes the attempt's directories and sets its limits; the caller hands `dirs` to the spawner. */
  async create(label: string, resources: JobResources = {}): Promise<AttemptCgroup> {
    const name = `${cgroupName(label)}-${Math.random().toString(36).slice(2, 8)}`;
    const dirs: AttemptDir[] = [];
    try {
      for (const root of this.roots) {
        // v1 cpu only when there is a cpu limit: an extra directory per job is a cost for nothing otherwise.
        if (root.controller === 'cpu' && resources.cpus === undefined) continue;
        if (root.controller === 'pids' && resources.pids === undefined && this.roots.some((r) => r.hierarchy.version === 2)) continue;
        // v1 memory only for a memory limit: making and joining a v1 memory cgroup costs about as much as the whole v2
        // one, and without a limit all it adds is the peak of all processes (the main process's peak is in rusage).
        if (root.controller === 'memory' && resources.memoryMb === undefined && this.roots.some((r) => r.hierarchy.version === 2)) continue;
        const dir = join(root.dir, name);
        mkdirSync(dir);
        dirs.push({ version: root.hierarchy.version, dir, ...(root.controller ? { controller: root.controller } : {}) });
        await applyLimits(dirs[dirs.length - 1]!, resources, this.controllers);
      }
    } catch (err) {
      for (const d of dirs) {
        try {
          rmdirSync(d.dir);
        } catch {
          // left for killLeftovers
        }
      }
      throw new Error(`could not make the job's cgroup: ${(err as Error).message}`);
    }
    return new AttemptCgroup(dirs, this.controllers);
  }

  /** Kills and removes what runners of this host that are no longer alive left under `drover/`. */
  private async killLeftovers(): Promise<void> {
    for (const root of this.roots) {
      const top = join(root.dir, '..');
      const mine = root.dir.slice(top.length + 1);
      for (const entry of await readdir(top, { withFileTypes: true }).catch(() => [])) {
        if (!entry.isDirectory() || entry.name === mine) continue;
        const owner = await hostLock(`cgroup-${entry.name}`);
        if (!owner) continue; // its runner is alive
        try {
          const dir = join(top, entry.name);
          const left = await killTree(dir, root.hierarchy.version);
          if (left > 0) this.log.warn({ dir, processes: left }, 'killed the processes a runner of this host that is gone left in its cgroups');
          await removeTree(dir);
        } catch (err) {
          this.log.warn({ err, dir: join(top, entry.name) }, 'could not clear the cgroup a gone runner left');
        } finally {
          owner.release();
        }
      }
    }
  }

  /** Kills every process of every attempt of this runner (its executor died or it is stopping). */
  async killAll(): Promise<void> {
    for (const root of this.roots) await killTree(root.dir, root.hierarchy.version).catch(() => 0);
  }

  /** Kills what is left, removes this runner's directories and frees its name. */
  async close(): Promise<void> {
    await this.killAll();
    for (const root of this.roots) {
      await removeTree(root.dir).catch((err: unknown) => this.log.warn({ err, dir: root.dir }, 'could not remove the runner cgroup'));
    }
    this.lock.release();
  }
}

/** One attempt's cgroup: read its accounting, then remove it. */
export class AttemptCgroup {
  constructor(
    readonly dirs: AttemptDir[],
    private readonly controllers: Controllers,
  ) {}

  /** The directory that holds the whole attempt (v2 if there is one). */
  private get killDir(): AttemptDir | undefined {
    return this.dirs.find((d) => d.version === 2) ?? this.dirs[0];
  }

  async kill(): Promise<void> {
    const d = this.killDir;
    if (d) await killTree(d.dir, d.version).catch(() => 0);
  }

  /** Peak memory, CPU time and whether the kernel OOM-killed a process of it. */
  async stats(): Promise<AttemptStats> {
    const v2 = this.dirs.find((d) => d.version === 2);
    const mem1 = this.dirs.find((d) => d.controller === 'memory');
    const usage: Partial<ResourceUsage> = {};
    let oomKilled = false;
    if (v2) {
      const cpu = statValue(readText(join(v2.dir, 'cpu.stat')) ?? '', 'usage_usec');
      if (cpu !== undefined) usage.cpuMs = cpu / 1000;
    }
    if (this.controllers.memory === 2 && v2) {
      const peak = Number(readText(join(v2.dir, 'memory.peak'))?.trim());
      if (Number.isFinite(peak)) usage.peakMemoryBytes = peak;
      oomKilled = (statValue(readText(join(v2.dir, 'memory.events')) ?? '', 'oom_kill') ?? 0) > 0;
    } else if (mem1) {
      const peak = Number(readText(join(mem1.dir, 'memory.max_usage_in_bytes'))?.trim());
      if (Number.isFinite(peak)) usage.peakMemoryBytes = peak;
      oomKilled = (statValue(readText(join(mem1.dir, 'memory.oom_control')) ?? '', 'oom_kill') ?? 0) > 0;
    }
    return { usage, oomKilled };
  }

  /**
   * Removes the directories. The spawner has killed the attempt by now, but the last processes may still be on
   * their way out: a few tries, then whatever remains is killed and tried once more.
   */
  async remove(): Promise<void> {
    for (const d of this.dirs) {
      for (let tries = 0; ; tries++) {
        try {
          rmdirSync(d.dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || tries >= 50) throw new Error(`removing cgroup ${d.dir}: ${(err as Error).message}`);
          if (tries === 10) await killTree(d.dir, d.version);
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }
  }
}

async function writeIfPresent(path: string, value: string): Promise<void> {
  if (await exists(path)) await writeFile(path, value);
}

async function applyLimits(d: AttemptDir, r: JobResources, c: Controllers): Promise<void> {
  const bytes = r.memoryMb !== undefined ? String(r.memoryMb * 1024 * 1024) : undefined;
  const quota = r.cpus !== undefined ? `${Math.max(1000, Math.round(r.cpus * CPU_PERIOD_US))}` : undefined;
  if (d.version === 2) {
    if (c.memory === 2 && bytes) {
      await writeFile(join(d.dir, 'memory.max'), bytes);
      // The limit means memory: no escape into swap. One OOM kills the attempt whole, not one process of it.
      await writeIfPresent(join(d.dir, 'memory.swap.max'), '0');
      await writeIfPresent(join(d.dir, 'memory.oom.group'), '1');
    }
    if (c.pids === 2 && r.pids !== undefined) await writeFile(join(d.dir, 'pids.max'), String(r.pids));
    if (c.cpu === 2 && quota) await writeFile(join(d.dir, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
    return;
  }
  if (d.controller === 'memory' && bytes) {
    await writeFile(join(d.dir, 'memory.limit_in_bytes'), bytes);
    await writeIfPresent(join(d.dir, 'memory.memsw.limit_in_bytes'), bytes).catch(() => undefined); // swap accounting may be off
  }
  if (d.controller === 'pids' && r.pids !== undefined) await writeFile(join(d.dir, 'pids.max'), String(r.pids));
  if (d.controller === 'cpu' && quota) {
    await writeFile(join(d.dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    await writeFile(join(d.dir, 'cpu.cfs_quota_us'), quota);
  }
}

/**
 * Turns on memory, cpu and pids for the cgroups below the runner's, where its hierarchy has them. A non-root cgroup
 * that holds processes cannot hand controllers down (cgroup v2's no-internal-process rule): then the processes of
 * the runner's cgroup (in a container: the container's own) move into a leaf `drover-runner` first, as a delegated
 * cgroup is meant to be used. Returns the controllers the runner's attempts get.
 */
async function enableV2Controllers(h: Hierarchy, log: Logger): Promise<(keyof Controllers)[]> {
  const wanted = (['memory', 'cpu', 'pids'] as const).filter((c) => h.controllers.has(c));
  if (wanted.length === 0) return [];
  const enable = async (dir: string): Promise<void> => writeFile(join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
  try {
    await enable(h.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || h.isRoot) {
      log.warn({ err: (err as Error).message, dir: h.dir }, 'cannot hand cgroup controllers to job cgroups: jobs get no memory/cpu/pids limits from cgroups');
      return [];
    }
    try {
      const leaf = join(h.dir, 'drover-runner');
      await mkdir(leaf, { recursive: true });
      const procs = (readText(join(h.dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean);
      for (const pid of procs) await writeFile(join(leaf, 'cgroup.procs'), pid).catch(() => undefined); // a process may have exited
      await enable(h.dir);
      log.info({ dir: h.dir, moved: procs.length }, 'moved the processes of the runner\'s cgroup into drover-runner to hand controllers to job cgroups');
    } catch (err2) {
      log.warn({ err: (err2 as Error).message, dir: h.dir }, 'cannot hand cgroup controllers to job cgroups: jobs get no memory/cpu/pids limits from cgroups');
      return [];
    }
  }
  return wanted;
}

/** `<hierarchy dir>/drover/<name>` with the controllers on for the attempts below; undefined if not writable. */
async function makeRunnerDir(base: string, name: string, controllers: (keyof Controllers)[]): Promise<string | undefined> {
  const top = join(base, TOP);
  const dir = join(top, name);
  try {
    await mkdir(dir, { recursive: true });
    if (controllers.length > 0) {
      const on = controllers.map((c) => `+${c}`).join(' ');
      await writeFile(join(top, 'cgroup.subtree_control'), on);
      await writeFile(join(dir, 'cgroup.subtree_control'), on);
    }
    return dir;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return undefined;
    throw new Error(`cannot make the runner cgroup ${dir}: ${(err as Error).message}`);
  }
}

/** Kills every process in `dir` and below; returns how many were found. */
export async function killTree(dir: string, version: 1 | 2): Promise<number> {
  const count = await countTree(dir);
  if (count === 0) return 0;
  if (version === 2 && (await exists(join(dir, 'cgroup.kill')))) {
    await writeFile(join(dir, 'cgroup.kill'), '1');
    return count;
  }
  // v1: no cgroup.kill. Sweep until a read finds nothing: a process forked between read and kill is in the next read.
  for (let round = 0; round < 200; round++) {
    const pids = await listTree(dir);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return count;
}

async function listTree(dir: string): Promise<number[]> {
  const own = (readText(join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number);
  const subs = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const below = await Promise.all(subs.filter((e) => e.isDirectory()).map((e) => listTree(join(dir, e.name))));
  return own.concat(...below);
}

const countTree = async (dir: string): Promise<number> => (await listTree(dir)).length;

/** Removes `dir` and the cgroups below it, deepest first (a cgroup directory goes with rmdir only). */
async function removeTree(dir: string): Promise<void> {
  const subs = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of subs) if (e.isDirectory()) await removeTree(join(dir, e.name));
  for (let tries = 0; ; tries++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || tries >= 50) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
