import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The private directory of each attempt (its default cwd and TMPDIR), under the runner's work directory.
 *
 * Removing a directory is a journaled metadata update on most disks: tens to hundreds of microseconds, the largest
 * per-job cost the runner had with /bin/true. So an empty directory is kept for the next attempt instead: taken
 * back from the job first (owned by the runner again and mode 0700, so nothing of the job can enter or write it any
 * more), then checked empty, then renamed out of the way; the next attempt gets it renamed to its own name. A
 * directory the job left anything in is removed with its contents, as before.
 *
 * Calls are synchronous: each takes microseconds, while a promise-API call costs a thread-pool round trip.
 */
const KEPT_MAX = 64;
const kept = new Map<string, string[]>();
const madeParents = new Set<string>();
const FREE_PREFIX = '.free-';

// Unique names without a random draw per job (it showed in profiles): a random part per process, then a counter.
const BASE = randomBytes(5).toString('hex');
let counter = 0;
const suffix = (): string => `${BASE}${(counter++).toString(36)}`;

/** A new, empty directory for an attempt of `jobId`, named after it, mode 0700, owned by the runner. */
export async function takeJobDir(parent: string, jobId: string): Promise<string> {
  if (!madeParents.has(parent)) {
    await mkdir(parent, { recursive: true, mode: 0o711 });
    madeParents.add(parent);
    dropStrayKeptDirs(parent);
  }
  const free = kept.get(parent)?.pop();
  if (free !== undefined) {
    const dir = join(parent, `${jobId}-${suffix()}`);
    try {
      renameSync(free, dir);
      return dir;
    } catch {
      // Removed meanwhile (an operator cleaned the work directory): make a new one.
    }
  }
  return mkdtempSync(join(parent, `${jobId}-`));
}

/** Whether the job left nothing in its directory (then it wrote no report files either). */
export function isEmptyDir(dir: string): boolean {
  try {
    return readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

/** Takes an attempt's directory back: kept for a later attempt when empty, else removed with what is in it. */
export async function giveBackJobDir(dir: string): Promise<void> {
  const parent = dirname(dir);
  const list = kept.get(parent) ?? [];
  if (list.length < KEPT_MAX) {
    try {
      // In this order: once the runner owns it with 0700, no process of the job can add anything after the check.
      if (process.geteuid?.() === 0) chownSync(dir, process.getuid!(), process.getgid!());
      chmodSync(dir, 0o700);
      if (readdirSync(dir).length === 0) {
        const free = join(parent, `${FREE_PREFIX}${suffix()}`);
        renameSync(dir, free);
        list.push(free);
        kept.set(parent, list);
        return;
      }
    } catch {
      // Not ours to keep (gone, or not the runner's to chown): removed below.
    }
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Kept directories a runner that died left (at most KEPT_MAX each): removed when this process first uses the work
 * directory. One that another live runner of the host keeps may go too; that runner then makes a new one.
 */
function dropStrayKeptDirs(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(FREE_PREFIX)) continue;
    try {
      rmdirSync(join(parent, name)); // empty ones only: anything else is not a kept directory
    } catch {
      // in use again, or not empty
    }
  }
}

/** Removes the directories kept under `parent` (the runner stops). */
export function dropKeptJobDirs(parent: string): void {
  for (const free of kept.get(parent) ?? []) {
    try {
      rmdirSync(free);
    } catch {
      // already gone
    }
  }
  kept.delete(parent);
}
