import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { killLeftGroups } from '../scripts/test-groups.mjs';
import { Redis } from 'ioredis';
import { freePort } from './helpers/processes.js';
import { REGISTRATION_LOG } from './helpers/prefixes.js';
import { AMQP_URL, REDIS_URL, alive, deletePrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** Runs the leaky stand-in for a test file with its own group registry; resolves once its processes run. */
async function leakyFile(t: TestContext): Promise<{ file: ChildProcessByStdio<null, Readable, null>; pids: number[]; groups: string; prefixes: string; prefix: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-pgroups-test-'));
  const groups = join(dir, 'groups');
  const prefixes = join(dir, 'prefixes');
  mkdirSync(groups);
  mkdirSync(prefixes);
  const out = join(dir, 'pids');
  const file = spawn(process.execPath, ['--conditions=drover-src', '--import', 'tsx', 'test/helpers/leaky-child.ts', out], {
    cwd: ROOT, env: { ...process.env, DROVER_TEST_PGROUPS: groups, DROVER_TEST_PREFIXES: prefixes }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let prefix = '';
  let pids: number[] = [];
  t.after(async () => {
    if (prefix) await deletePrefix(prefix);
    for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
    if (file.exitCode === null && file.signalCode === null) file.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  let said = '';
  file.stdout.on('data', (c: Buffer) => (said += c.toString()));
  await until('the stand-in to start its processes', () => said.includes('ready'), 30_000);
  const [line, written] = readFileSync(out, 'utf8').split('\n');
  pids = line!.split(' ').map(Number);
  prefix = written!;
  assert.equal(pids.length, 3);
  assert.ok(pids.every(alive), 'the shell and its two sleeps run');
  return { file, pids, groups, prefixes, prefix };
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

test('the keys of a test file killed outright are deleted by npm test\'s teardown, and only those', async (t) => {
  const { file, prefixes, prefix } = await leakyFile(t);
  const redis = new Redis(REDIS_URL);
  // A prefix registered by nobody's file, with keys: the teardown deletes only what is registered.
  const bystander = `bystander-${randomUUID()}`;
  t.after(async () => {
    await redis.del(`{${bystander}}:job:1`);
    redis.disconnect();
  });
  await redis.set(`{${bystander}}:job:1`, 'x');
  const registered = (): string[] => readdirSync(prefixes).filter((f) => f !== REGISTRATION_LOG);
  assert.deepEqual(registered(), [prefix], 'the prefix is registered');
  file.kill('SIGKILL');
  await once(file, 'exit');
  assert.equal((await redis.keys(`{${prefix}}*`)).length, 2, 'nothing in the file could run: its keys are left (the control)');
  const teardown = spawnSync(process.execPath, ['--conditions=drover-src', '--import', 'tsx', 'test/helpers/left-prefixes.ts', prefixes], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(teardown.status, 0, teardown.stderr);
  assert.match(teardown.stdout, new RegExp(`deleted the keys of 1 prefix\\(es\\).*${prefix}`));
  assert.deepEqual(await redis.keys(`{${prefix}}*`), [], 'its keys are gone');
  assert.deepEqual(registered(), [], 'and it is unregistered');
  assert.match(readFileSync(join(prefixes, REGISTRATION_LOG), 'utf8'), new RegExp(prefix), 'the log of where tests worked keeps it');
  assert.equal(await redis.exists(`{${bystander}}:job:1`), 1, 'a key of no registered prefix is left alone');
});

test('a prefix on a Redis that is gone is reported, not waited for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-prefixes-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  writeFileSync(join(dir, 'test-gone'), JSON.stringify({ prefix: 'test-gone', redisUrl: `redis://127.0.0.1:${port}`, amqpUrl: AMQP_URL }));
  const teardown = spawnSync(process.execPath, ['--conditions=drover-src', '--import', 'tsx', 'test/helpers/left-prefixes.ts', dir], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.equal(teardown.status, 0, teardown.stderr);
  assert.match(teardown.stdout, /could not reach the Redis of test-gone/);
});
