import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A mounted cgroup hierarchy and this process's own cgroup directory in it. */
export interface Hierarchy {
  version: 1 | 2;
  /** v2: the controllers the own cgroup may hand down (its cgroup.controllers); v1: the hierarchy's controllers. */
  controllers: Set<string>;
  /** The process's own cgroup in this hierarchy, as a directory. */
  dir: string;
  /** The own cgroup is the hierarchy's root (exempt from v2's no-internal-process rule). */
  isRoot: boolean;
}

interface Mount {
  root: string;
  point: string;
  fstype: string;
  superOpts: string[];
}

/** /proc/self/mountinfo: `id parent dev root point opts [optional...] - fstype source superopts`. */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 5 || right.length < 3) continue;
    const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ root: unescape(left[3]!), point: unescape(left[4]!), fstype: right[0]!, superOpts: right[2]!.split(',') });
  }
  return out;
}

/** /proc/self/cgroup: `id:controllers:path`; v2 is the line with id 0 and no controllers. */
export function parseProcCgroup(text: string): { v2?: string; v1: Map<string, string> } {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3];
    else for (const c of m[2]!.split(',')) if (c) v1.set(c, m[3]!);
  }
  return { ...(v2 !== undefined ? { v2 } : {}), v1 };
}

/** The own cgroup's directory under a mount whose root is `mountRoot` (a container sees its cgroup as the root). */
function ownDir(mount: Mount, path: string): string | undefined {
  if (mount.root === '/') return join(mount.point, path);
  if (path === mount.root || path.startsWith(`${mount.root}/`)) return join(mount.point, path.slice(mount.root.length));
  return undefined;
}

/**
 * The cgroup hierarchies this process is in and may make cgroups under: cgroup v2 (one tree) and the v1
 * memory, pids and cpu hierarchies (a hybrid host has both). `v2Dir` overrides where the v2 cgroups go
 * (RUNNER_CGROUP=<dir>, a delegated subtree).
 */
export async function findHierarchies(v2Dir?: string): Promise<Hierarchy[]> {
  const [mountinfo, own] = await Promise.all([
    readFile('/proc/self/mountinfo', 'utf8').catch(() => ''),
    readFile('/proc/self/cgroup', 'utf8').catch(() => ''),
  ]);
  const mounts = parseMountinfo(mountinfo);
  const paths = parseProcCgroup(own);
  const out: Hierarchy[] = [];
  const v2Mount = mounts.find((m) => m.fstype === 'cgroup2');
  if (v2Dir || (v2Mount && paths.v2 !== undefined)) {
    const dir = v2Dir ?? ownDir(v2Mount!, paths.v2!);
    if (dir) {
      const controllers = await readFile(join(dir, 'cgroup.controllers'), 'utf8').catch(() => undefined);
      if (controllers !== undefined) {
        const isRoot = !v2Dir && paths.v2 === '/' && v2Mount!.root === '/';
        out.push({ version: 2, controllers: new Set(controllers.trim().split(/\s+/).filter(Boolean)), dir, isRoot });
      }
    }
  }
  for (const controller of ['memory', 'pids', 'cpu']) {
    const mount = mounts.find((m) => m.fstype === 'cgroup' && m.superOpts.includes(controller));
    const path = paths.v1.get(controller);
    if (!mount || path === undefined) continue;
    const dir = ownDir(mount, path);
    if (!dir || out.some((h) => h.version === 1 && h.dir === dir)) continue;
    out.push({ version: 1, controllers: new Set(mount.superOpts.filter((o) => ['memory', 'pids', 'cpu', 'cpuacct'].includes(o))), dir, isRoot: path === '/' });
  }
  return out;
}
