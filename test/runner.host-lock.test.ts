import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { hostLock, hostLockPath } from '@drover/runner';

/** The abstract socket names bound right now, as the kernel has them ('@' for each NUL). */
const boundNames = (): string[] =>
  readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)[7] ?? '').filter((n) => n.startsWith('@'));

test('a host lock excludes a second holder, and its name fills sun_path whatever Node binds it', async () => {
  const name = `test-${randomUUID()}`;
  const lock = await hostLock(name);
  assert.ok(lock, 'the first claim holds');
  assert.equal(await hostLock(name), undefined, 'a second claim of the same name fails');
  const bound = boundNames().filter((n) => n.includes(name));
  assert.equal(bound.length, 1);
  // 107 bytes of name, no NUL padding: the same kernel name for Node versions that pad and that do not.
  assert.equal(bound[0], `@${hostLockPath(name).slice(1)}`);
  assert.equal(hostLockPath(name).length, 108);
  lock.release();
  await new Promise((r) => setTimeout(r, 50));
  const again = await hostLock(name);
  assert.ok(again, 'free again once released');
  again.release();
  assert.equal(Buffer.byteLength(hostLockPath('x'.repeat(300))), 108, 'a long name is shortened to a digest');
});

// Runners of one host may run different Node versions (an upgrade in progress). The machine's own node, when it is
// another version than this one, must be refused the lock this process holds.
const other = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
  const r = spawnSync(p, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== process.version;
});

test('a lock held under this Node is refused to another Node version', { skip: !other && 'no other Node version on this machine' }, async () => {
  const name = `test-${randomUUID()}`;
  const lock = await hostLock(name);
  assert.ok(lock);
  const script = `const s = require('node:net').createServer(); s.on('error', (e) => { console.log(e.code); process.exit(0); });
    s.listen({ path: ${JSON.stringify(hostLockPath(name))}, backlog: 1 }, () => { console.log('BOUND'); process.exit(0); });`;
  const child = spawn(other!, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((r) => child.once('exit', r));
  lock.release();
  assert.equal(out.trim(), 'EADDRINUSE', `${other} could take a lock this process holds`);
  // The control: the unpadded name of the old locks, which the other version took beside this one.
  const old = `\0drover-${name}-unpadded`;
  const held = await new Promise<{ close(): void }>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ path: old, backlog: 1 }, () => resolve(s));
  });
  const script2 = script.replace(JSON.stringify(hostLockPath(name)), JSON.stringify(old));
  const r = spawnSync(other!, ['-e', script2], { encoding: 'utf8' });
  held.close();
  assert.equal(r.stdout.trim(), 'BOUND', 'without the padding, two Node versions both hold the same name');
});


