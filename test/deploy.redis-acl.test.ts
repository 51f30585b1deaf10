// Redis's users as deploy/k8s/base/redis ships them (Kubernetes' init container and compose's init-secrets both run
// render-acl.sh): the rendered ACL file read rule by rule, the script's refusals, and a real redis-server loading the
// file, attacked with a service's credential the way a job holding a stolen one would.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { ACL_TEMPLATE, parseAcl, renderAcl, sha256, startAclRedis, tempDir, type AclUser } from './helpers/deploy-secrets.js';

const SERVICES = ['api', 'scheduler', 'runner'] as const;
/** What every service user may do: Drover's keys and channels, every command but the ones beyond the data. */
const SERVICE_COMMANDS = ['+@all', '-@admin', '-@dangerous', '+info', '-function'];

const password = (): string => randomBytes(32).toString('hex');

function serviceUrls(host = 'redis', port = 6379): { urls: string[]; passwords: Record<string, string> } {
  const passwords: Record<string, string> = {};
  const urls = SERVICES.map((s) => {
    passwords[s] = password();
    return `redis://drover-${s}:${passwords[s]}@${host}:${port}`;
  });
  return { urls, passwords };
}

function user(users: Map<string, AclUser>, name: string): AclUser {
  const u = users.get(name);
  assert.ok(u, `the ACL file has the user ${name}`);
  return u;
}

test('redis acl: the default user is off; each service has its own password, Drover\'s keys and channels only, no admin commands', (t) => {
  const dir = tempDir(t, 'acl');
  const { urls, passwords } = serviceUrls();
  const r = renderAcl(dir, urls);
  assert.equal(r.status, 0, r.stderr);
  const users = parseAcl(r.text!);
  assert.deepEqual([...users.keys()].sort(), ['default', 'drover-api', 'drover-healthcheck', 'drover-runner', 'drover-scheduler']);

  const def = user(users, 'default');
  assert.equal(def.enabled, false, 'default is off: a connection without a password can do nothing');
  assert.equal(def.nopass, false);
  assert.deepEqual(def.passwords, []);
  assert.deepEqual(def.commands, [], 'and has no commands, should it ever be switched on');
  assert.deepEqual(def.keys, []);

  for (const s of SERVICES) {
    const u = user(users, `drover-${s}`);
    assert.equal(u.enabled, true);
    assert.equal(u.nopass, false, `drover-${s} needs a password`);
    assert.deepEqual(u.passwords, [sha256(passwords[s]!)], `drover-${s}: the hash of the password in its URL, and only that`);
    assert.deepEqual(u.keys, ['~{drover}:*'], `drover-${s}: Drover's keys only`);
    assert.deepEqual(u.channels, ['&{drover}:*'], `drover-${s}: Drover's channels only`);
    assert.deepEqual(u.commands, SERVICE_COMMANDS, `drover-${s}: commands`);
  }
  const hashes = SERVICES.map((s) => user(users, `drover-${s}`).passwords[0]);
  assert.equal(new Set(hashes).size, 3, 'three passwords: one service\'s can be changed alone');
  assert.ok(!r.text!.includes(passwords.runner!), 'the file holds hashes, never a password');

  const probe = user(users, 'drover-healthcheck');
  assert.deepEqual(probe.commands, ['+ping'], 'the probe may PING and nothing else');
  assert.deepEqual(probe.keys, []);
  assert.deepEqual(probe.channels, []);
  const probePassword = readFileSync(join(dir, 'healthcheck-password'), 'utf8');
  assert.match(probePassword, /^[0-9a-f]{64}$/, 'a generated probe password');
  assert.deepEqual(probe.passwords, [sha256(probePassword)]);
  for (const f of ['users.acl', 'healthcheck-password']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o400, `${f} is readable by its owner alone`);

  // Rendered again (a re-deploy): same probe password, so a running probe keeps working; the prefix follows DROVER_PREFIX.
  const again = renderAcl(dir, urls, 'team-a');
  assert.equal(again.status, 0, again.stderr);
  const users2 = parseAcl(again.text!);
  assert.deepEqual(user(users2, 'drover-healthcheck').passwords, probe.passwords);
  assert.deepEqual(user(users2, 'drover-runner').keys, ['~{team-a}:*']);
  // Every user of the template is rendered (none is silently dropped).
  const templateUsers = readFileSync(ACL_TEMPLATE, 'utf8').split('\n').filter((l) => l.startsWith('user ')).map((l) => l.split(' ')[1]);
  assert.deepEqual(templateUsers.sort(), [...users.keys()].sort());
});

test('redis acl: render-acl.sh refuses URLs that would weaken the file or fail at login later', (t) => {
  const dir = tempDir(t, 'acl-bad');
  const { urls } = serviceUrls();
  const cases: { name: string; urls: string[]; prefix?: string; error: RegExp }[] = [
    { name: 'a service without a URL', urls: urls.slice(0, 2), error: /no Redis URL gives a password for user drover-runner/ },
    { name: 'a URL for a user the template lacks', urls: [...urls, `redis://drover-runnr:${password()}@redis:6379`], error: /template has no user drover-runnr/ },
    { name: 'a URL without a password', urls: [...urls.slice(0, 2), 'redis://drover-runner@redis:6379'], error: /URL 3 has no password/ },
    { name: 'a URL without credentials', urls: [...urls.slice(0, 2), 'redis://redis:6379'], error: /URL 3 has no user:password@/ },
    { name: 'a short password', urls: [...urls.slice(0, 2), 'redis://drover-runner:short@redis:6379'], error: /at least 16 URL-safe/ },
    { name: 'a percent-encoded password', urls: [...urls.slice(0, 2), `redis://drover-runner:${password()}%2F@redis:6379`], error: /URL-safe/ },
    { name: 'a password with a space (another ACL rule)', urls: [...urls.slice(0, 2), `redis://drover-runner:${password()} allkeys@redis:6379`], error: /URL-safe/ },
    { name: 'two URLs for one user', urls: [...urls, urls[2]!], error: /two URLs/ },
    { name: 'a URL of another scheme', urls: [...urls.slice(0, 2), `amqp://drover-runner:${password()}@redis:6379`], error: /not redis/ },
    { name: 'a prefix that is a glob', urls, prefix: 'drover*', error: /DROVER_PREFIX/ },
  ];
  for (const c of cases) {
    const r = renderAcl(dir, c.urls, c.prefix);
    assert.notEqual(r.status, 0, `${c.name}: refused`);
    assert.match(r.stderr, c.error, c.name);
    for (const u of c.urls) {
      const pw = /:([^:@/]+)@/.exec(u)?.[1];
      if (pw && pw.length >= 16) assert.ok(!r.stderr.includes(pw), `${c.name}: the message never shows a password`);
    }
  }
});

test('redis acl: a real Redis with the file: no login without a password, and a service credential cannot reach beyond Drover\'s data', async (t) => {
  const dir = tempDir(t, 'acl-live');
  const { urls, passwords } = serviceUrls();
  const r = renderAcl(dir, urls);
  assert.equal(r.status, 0, r.stderr);
  const port = await startAclRedis(t, join(dir, 'users.acl'), dir);

  const clients: Redis[] = [];
  t.after(() => clients.forEach((c) => c.disconnect()));
  const client = (username?: string, pw?: string): Redis => {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null, ...(username ? { username, password: pw } : {}) });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  // No password: nothing, not even a PING; the default user cannot log in.
  const anon = client();
  await anon.connect();
  await assert.rejects(anon.ping(), /NOAUTH/);
  await assert.rejects(anon.get('{drover}:job:x'), /NOAUTH/);
  await assert.rejects(anon.call('AUTH', 'default', ''), /WRONGPASS|invalid/i);
  // Another service's password does not open a service's user.
  await assert.rejects(anon.call('AUTH', 'drover-api', passwords.runner!), /WRONGPASS|invalid username-password/i);
  await assert.rejects(anon.call('AUTH', 'drover-healthcheck', passwords.runner!), /WRONGPASS|invalid username-password/i);

  for (const s of SERVICES) {
    const c = client(`drover-${s}`, passwords[s]);
    await c.connect();
    assert.equal(await c.call('ACL', 'WHOAMI'), `drover-${s}`);
  }

  // The runner's credential, as a job that stole it would use it.
  const runner = client('drover-runner', passwords.runner);
  await runner.connect();
  // What Drover does with it works: its keys, scripts, streams, pub/sub on its channels, INFO.
  assert.equal(await runner.set('{drover}:probe', '1'), 'OK');
  assert.equal(await runner.eval("return redis.call('INCR', KEYS[1])", 1, '{drover}:probe'), 2);
  assert.match((await runner.xadd('{drover}:events', '*', 't', 'x')) ?? '', /^\d+-\d+$/);
  assert.equal(await runner.publish('{drover}:control', 'x'), 0);
  assert.match(await runner.info('server'), /redis_version/);
  // What reaches beyond Drover's data does not.
  const denied: [string, ...(string | number)[]][] = [
    ['CONFIG', 'SET', 'dir', '/tmp'],
    ['CONFIG', 'GET', 'requirepass'],
    ['ACL', 'SETUSER', 'evil', 'on', '>evil-password-123456', '~*', '+@all'],
    ['ACL', 'LIST'],
    ['ACL', 'LOAD'],
    ['MODULE', 'LOAD', '/tmp/evil.so'],
    ['DEBUG', 'SLEEP', '0'],
    ['REPLICAOF', '203.0.113.1', '6379'],
    ['MIGRATE', '203.0.113.1', '6379', '{drover}:probe', '0', '1000'],
    ['MONITOR'],
    ['CLIENT', 'LIST'],
    ['CLIENT', 'KILL', 'USER', 'drover-api'],
    ['FLUSHALL'],
    ['FLUSHDB'],
    ['KEYS', '*'],
    ['SHUTDOWN', 'NOSAVE'],
    ['BGSAVE'],
    ['FUNCTION', 'LOAD', "#!lua name=x\nredis.register_function('x', function() return 1 end)"],
    ['SET', 'other-app:session', 'x'],
    ['GET', 'other-app:session'],
    ['PUBLISH', 'other-app:events', 'x'],
  ];
  for (const [cmd, ...args] of denied) {
    // MODULE and DEBUG are also off in Redis 7's own configuration, which may answer before the ACL does.
    const refusal = cmd === 'MODULE' || cmd === 'DEBUG' ? /NOPERM|no permissions|command not allowed/i : /NOPERM|no permissions/i;
    await assert.rejects(runner.call(cmd, ...args), refusal, `${cmd} ${args.join(' ')} is denied`);
  }
  // Nor through a script: commands inside EVAL are checked against the same rules.
  await assert.rejects(runner.eval("return redis.call('SET', 'other-app:session', 'x')", 0), /can't access at least one of the keys/i);
  await assert.rejects(runner.eval("return redis.call('FLUSHALL')", 0), /can't run this command/i);
  // Still alive, with its configuration unchanged.
  assert.equal(await runner.get('{drover}:probe'), '2');

  // The probe's user: PING only.
  const probe = client('drover-healthcheck', readFileSync(join(dir, 'healthcheck-password'), 'utf8'));
  await probe.connect();
  assert.equal(await probe.ping(), 'PONG');
  await assert.rejects(probe.get('{drover}:probe'), /NOPERM|no permissions/i);
  await assert.rejects(probe.info(), /NOPERM|no permissions/i);
});
