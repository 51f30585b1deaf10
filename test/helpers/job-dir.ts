import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chooseJobUser } from '@drover/runner';

/**
 * A temporary directory jobs may read and write, removed after the test, as an operator would prepare a directory
 * shared with jobs: open to every uid where each job runs as a uid of its own (a root runner's default), else
 * owned by the one user jobs run as. Under uids of their own, a file one job made is not another job's to write:
 * jobs that add to one file need `sharedFile`.
 */
export function jobTempDir(t: Pick<TestContext, 'after'>, prefix = 'drover-job-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const choice = chooseJobUser(undefined);
  if (choice.user) chownSync(dir, choice.user.uid, choice.user.gid);
  else if (choice.uids) chmodSync(dir, 0o777);
  return dir;
}

/** A file in `dir` that every job may append to, whatever uid it runs as. */
export function sharedFile(dir: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, '', { mode: 0o666 });
  chmodSync(file, 0o666);
  return file;
}
