import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';

/**
 * Every process a test starts gets a process group of its own (detached), registered here at spawn: the group is
 * killed when the test ends, when this test file's process exits or is signalled, and, should the file be killed
 * outright (a timeout, a cancelled run), by `npm test`'s own teardown, which reads the groups from the directory
 * DROVER_TEST_PGROUPS names (one file per group, removed once the group is gone). So nothing a test started is
 * left reparented to PID 1 holding the reporter's pipe open.
 */
const groups = new Set<number>();
const GROUPS_DIR = process.env.DROVER_TEST_PGROUPS;

function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // gone already
  }
}

function forget(pgid: number): void {
  groups.delete(pgid);
  if (GROUPS_DIR) rmSync(join(GROUPS_DIR, String(pgid)), { force: true });
}

const killAllGroups = (): void => {
  for (const g of groups) killGroup(g);
};
process.once('exit', killAllGroups);
// The file's global teardown, once all its tests ended (passed, failed, timed out or cancelled): a service still
// running would keep the file's process alive, and with it the run, for ever. Only under the test runner.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  after(killAllGroups);
  // A test that timed out in its after-hooks can leave a connection open that keeps this file's process alive, and
  // the whole run waiting for it. Its results are reported by now: if the process is still here after a grace
  // period, it ends (the timer does not keep it alive by itself).
  after(() => void setTimeout(() => process.exit(), 15_000).unref());
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAllGroups();
    process.kill(process.pid, sig);
  });
}

/**
 * `spawn` in a new process group (detached), registered for the kills above. `kill()` of the returned child still
 * signals the leader only (tests that SIGTERM one service mean it); `killTracked` ends the whole group.
 */
export function spawnTracked(command: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
  const child = spawn(command, args, { ...opts, detached: true });
  const pgid = child.pid;
  if (pgid === undefined) return child;
  groups.add(pgid);
  if (GROUPS_DIR) writeFileSync(join(GROUPS_DIR, String(pgid)), `${process.pid} ${command}\n`);
  // The group stays registered after its leader exits: what the leader left in it (a runner's spawner helper, say)
  // may be what the test watches, and goes at the test's end.
  return child;
}

/** True for the leader of a group registered here (a service a test started, not a job of an in-process runner). */
export function isTrackedGroup(pid: number): boolean {
  return groups.has(pid);
}

/** SIGKILL to the child's whole process group (idempotent). */
export function killTracked(child: ChildProcess): void {
  if (child.pid !== undefined && groups.has(child.pid)) {
    killGroup(child.pid);
    forget(child.pid);
  } else if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
