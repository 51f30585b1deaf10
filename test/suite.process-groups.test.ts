import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { killLeftGroups } from '../scripts/test-groups.mjs';
import { alive } from './helpers/stack.js';
import { until } from './helpers/until.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** Runs the leaky stand-in for a test file with its own group registry; resolves once its processes run. */
async function leakyFile(t: TestContext): Promise<{ file: ChildProcessByStdio<null, Readable, null>; pids: number[]; groups: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-pgroups-test-'));
  const groups = join(dir, 'groups');
  mkdirSync(groups);
  const out = join(dir, 'pids');
  const file = spawn(process.execPath, ['--conditions=drover-src', '--import', 'tsx', 'test/helpers/leaky-child.ts', out], {
    cwd: ROOT, env: { ...process.env, DROVER_TEST_PGROUPS: groups }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let pids: number[] = [];
  t.after(() => {
    for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
    if (file.exitCode === null && file.signalCode === null) file.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  let said = '';
  file.stdout.on('data', (c: Buffer) => (said += c.toString()));
  await until('the stand-in to start its processes', () => said.includes('ready'), 30_000);
  pids = readFileSync(out, 'utf8').split(' ').map(Number);
  assert.equal(pids.length, 3);
  assert.ok(pids.every(alive), 'the shell and its two sleeps run');
  return { file, pids, groups };
}

test('a test file stopped by a signal kills the process groups it started', async (t) => {
  const { file, pids } = await leakyFile(t);
  file.kill('SIGTERM');
  await once(file, 'exit');
  await until('its processes to be gone', () => pids.every((p) => !alive(p)), 5000);
});

test('a test file killed outright leaves its groups running (the control), and npm test\'s teardown kills them', async (t) => {
  const { file, pids, groups } = await leakyFile(t);
  assert.equal(readdirSync(groups).length, 1, 'the group is registered');
  file.kill('SIGKILL');
  await once(file, 'exit');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(pids.every(alive), 'nothing in the file could run: its processes live on, reparented');
  const left = killLeftGroups(groups);
  assert.equal(left.length, 1);
  await until('the teardown to end them', () => pids.every((p) => !alive(p)), 5000);
  assert.deepEqual(readdirSync(groups), [], 'and the registry is empty');
});
