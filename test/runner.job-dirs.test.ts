import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dropKeptJobDirs, giveBackJobDir, takeJobDir } from '../services/runner/src/job-dirs.js';

const root = process.geteuid?.() === 0;
/** A uid no account has: a job's own. */
const JOB_UID = 61_234;

function workDir(t: { after: (fn: () => void) => void }): string {
  const parent = mkdtempSync(join(tmpdir(), 'drover-jobdirs-'));
  t.after(() => {
    dropKeptJobDirs(parent);
    rmSync(parent, { recursive: true, force: true });
  });
  return parent;
}

test('an empty directory is kept for the next attempt under its name; one with files is removed with them', async (t) => {
  const parent = workDir(t);
  const a = await takeJobDir(parent, 'jobA');
  assert.match(a, /jobA-/);
  assert.equal(statSync(a).mode & 0o777, 0o700);
  await giveBackJobDir(a);
  assert.equal(existsSync(a), false, "the first attempt's name is gone");
  const b = await takeJobDir(parent, 'jobB');
  assert.match(b, /jobB-/);
  assert.deepEqual(readdirSync(b), []);
  writeFileSync(join(b, 'left'), 'x');
  await giveBackJobDir(b);
  assert.equal(existsSync(b), false);
  const c = await takeJobDir(parent, 'jobC');
  assert.deepEqual(readdirSync(c), [], 'a new directory, nothing of jobB in it');
  await giveBackJobDir(c);
  assert.deepEqual(readdirSync(parent).filter((n) => !n.startsWith('.free-')), [], 'only kept, empty directories remain');
  dropKeptJobDirs(parent);
  assert.deepEqual(readdirSync(parent), [], 'and the runner removes those when it stops');
});

test("a job's process still running after its directory was given back cannot put anything into the next attempt's", { skip: !root && 'needs root (jobs as other uids)' }, async (t) => {
  const parent = workDir(t);
  chmodSync(parent, 0o711);
  const a = await takeJobDir(parent, 'jobA');
  chownSync(a, JOB_UID, JOB_UID);
  // The job opens its directory to everyone, and leaves a process behind with its cwd there, writing later.
  chmodSync(a, 0o777);
  const late = spawn('sh', ['-c', 'sleep 0.4; touch ./late 2>/dev/null; mkdir ./sub 2>/dev/null; exit 0'], { cwd: a, uid: JOB_UID, gid: JOB_UID, stdio: 'ignore' });
  t.after(() => late.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 100));
  await giveBackJobDir(a);
  const b = await takeJobDir(parent, 'jobB');
  assert.equal(existsSync(a), false);
  const st = statSync(b);
  assert.equal(st.uid, process.getuid!(), "the runner's until the next job gets it");
  assert.equal(st.mode & 0o777, 0o700, 'its mode set back');
  await once(late, 'exit');
  assert.deepEqual(readdirSync(b), [], 'nothing written by the earlier job');
});

test("kept directories a dead runner left are removed when a runner first uses the work directory", async (t) => {
  const parent = workDir(t);
  mkdirSync(join(parent, '.free-leftover1'));
  mkdirSync(join(parent, '.free-leftover2'));
  mkdirSync(join(parent, '.free-notempty'));
  writeFileSync(join(parent, '.free-notempty', 'x'), '');
  const a = await takeJobDir(parent, 'jobA');
  assert.deepEqual(readdirSync(parent).sort(), ['.free-notempty', a.split('/').pop()!].sort(), 'the empty ones went; nothing with contents is touched');
  await giveBackJobDir(a);
});
