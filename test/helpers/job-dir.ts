import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chooseJobUser } from '@drover/runner';

/**
 * A temporary directory jobs may read and write, removed after the test: owned by the user a runner runs jobs as
 * by default (nobody when the tests run as root), as an operator would prepare a directory shared with jobs.
 */
export function jobTempDir(t: Pick<TestContext, 'after'>, prefix = 'drover-job-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const user = chooseJobUser(undefined).user;
  if (user) chownSync(dir, user.uid, user.gid);
  return dir;
}
