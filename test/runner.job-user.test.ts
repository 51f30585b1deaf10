import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DroverError } from '@drover/core';
import { DEFAULT_JOB_UIDS, chooseJobUser, perJobIdentity, resolveIdentity, type UserDatabase } from '@drover/runner';
import { startStack } from './helpers/stack.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/bash',
  'builder:x:1000:1000::/home/builder:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  '',
].join('\n');
const GROUP = ['root:x:0:', 'users:x:100:builder,nobody', 'docker:x:999:builder', 'builder:x:1000:', 'nogroup:x:65534:', ''].join('\n');

function db(t: TestContext, self: UserDatabase['self'], passwd = PASSWD): UserDatabase {
  const dir = mkdtempSync(join(tmpdir(), 'drover-users-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'passwd'), passwd);
  writeFileSync(join(dir, 'group'), GROUP);
  return { passwd: join(dir, 'passwd'), group: join(dir, 'group'), self };
}

function configProblem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DroverError);
    assert.equal(err.code, 'CONFIG');
    return err.message;
  }
  return assert.fail('expected a config error');
}

const ROOT = { uid: 0, missingCaps: [] };
const UNPRIVILEGED = { uid: 1000, missingCaps: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID'] };

test('a runner that can switch users runs jobs as RUNNER_JOB_USER, with its groups and login; root only when asked for by name', (t) => {
  const users = db(t, ROOT);
  assert.deepEqual(chooseJobUser(undefined, users), { user: undefined, uids: DEFAULT_JOB_UIDS }, 'unset: a uid per job (runner.job-uids.test.ts)');
  assert.deepEqual(chooseJobUser('nobody', users), {
    user: { uid: 65534, gid: 65534, groups: [65534, 100], login: { user: 'nobody', home: '/nonexistent', shell: '/usr/sbin/nologin' } },
  });
  assert.deepEqual(chooseJobUser('builder', users).user?.groups, [1000, 100, 999], 'supplementary groups as initgroups sets them');
  const root = chooseJobUser('root', users);
  assert.equal(root.user?.uid, 0);
  assert.match(root.warning ?? '', /jobs run as root \(RUNNER_JOB_USER=root\)/);
  assert.equal(chooseJobUser('65534', users).user?.login.user, 'nobody', 'a uid works as well as a name');
});

test('no such user: the runner refuses to start and says what to do', (t) => {
  const withoutNobody = db(t, ROOT, PASSWD.replace(/^nobody:.*$/m, ''));
  assert.match(configProblem(() => chooseJobUser('nobody', withoutNobody)), /RUNNER_JOB_USER names "nobody", but .* has no such user/);
  assert.match(configProblem(() => chooseJobUser('ghost', withoutNobody)), /RUNNER_JOB_USER names "ghost", but .* has no such user/);
});

test("a runner that cannot switch users runs jobs as itself, with a warning; naming another user is a config error", (t) => {
  const users = db(t, UNPRIVILEGED);
  const own = chooseJobUser(undefined, users);
  assert.equal(own.user, undefined, 'ids left as they are');
  assert.match(own.warning ?? '', /jobs run as this runner's own user \(uid 1000\), so a job can read the runner's environment, memory and secret files .* run the runner as root: each job then runs as a uid of its own \(RUNNER_JOB_UIDS\), or as RUNNER_JOB_USER/);
  const named = chooseJobUser('builder', users);
  assert.equal(named.user, undefined, 'its own user by name: nothing to switch (setgroups would fail)');
  assert.ok(named.warning);
  assert.match(configProblem(() => chooseJobUser('nobody', users)), /RUNNER_JOB_USER names "nobody" \(uid 65534\), but this runner \(uid 1000\) cannot run jobs as another user/);
  // Root in a container that dropped CAP_KILL: it could switch, but not stop its jobs.
  const capless = db(t, { uid: 0, missingCaps: ['CAP_KILL'] });
  assert.match(configProblem(() => chooseJobUser('nobody', capless)), /this runner \(uid 0\) cannot run jobs as another user \(it lacks CAP_KILL\)/, 'root without the capabilities');
  assert.match(configProblem(() => chooseJobUser(undefined, capless)), /runs as root but cannot run jobs as another user \(it lacks CAP_KILL\).* grant it CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_KILL, CAP_SETGID, CAP_SETUID, or set RUNNER_JOB_USER=root/, 'never root jobs without the opt-in');
  assert.equal(chooseJobUser('root', capless).user, undefined, 'root by name: allowed, nothing to switch');
});

test("a job's own user and group override the default job user, only from the allow-list", (t) => {
  const users = db(t, ROOT);
  const nobody = chooseJobUser('nobody', users).user;
  const allowed = { users: ['builder'], groups: ['docker'] };
  assert.deepEqual(resolveIdentity({}, allowed, nobody, users), nobody);
  assert.deepEqual(resolveIdentity({ user: 'builder' }, allowed, nobody, users), { uid: 1000, gid: 1000, groups: [1000, 100, 999], login: { user: 'builder', home: '/home/builder', shell: '/bin/sh' } });
  assert.deepEqual(resolveIdentity({ group: 'docker' }, allowed, nobody, users), { ...nobody, gid: 999 }, 'a group replaces the primary group only');
  assert.throws(() => resolveIdentity({ user: 'root' }, allowed, nobody, users), /user "root" is not allowed on this runner \(RUNNER_ALLOWED_USERS\)/);
  assert.deepEqual(resolveIdentity({}, allowed, undefined, users), {}, "no default job user: the runner's own ids");
  const own = perJobIdentity(2_000_000_007, '/tmp/drover-jobs/j1-x');
  assert.deepEqual(resolveIdentity({}, allowed, own, users), { uid: 2_000_000_007, gid: 2_000_000_007, groups: [], login: { user: 'drover-2000000007', home: '/tmp/drover-jobs/j1-x', shell: '/bin/sh' } });
  assert.equal(resolveIdentity({ user: 'builder' }, allowed, own, users).uid, 1000, "a job's own user wins over a uid of its own");
  assert.deepEqual(resolveIdentity({ group: 'docker' }, allowed, own, users), { ...own, gid: 999 }, 'and so does its group');
});

/** The login fields of a passwd line: what login(1) would set for that user (an empty shell means /bin/sh). */
function passwdLogin(name: string): { home: string; shell: string } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  const [, , , , , home = '', shell = ''] = line?.split(':') ?? [];
  return { home, shell: shell || '/bin/sh' };
}

test('a job gets HOME, USER, LOGNAME and SHELL of the user it runs as; a uid of its own gets /bin/sh', { skip: process.geteuid?.() !== 0 && 'needs root' }, async (t) => {
  const s = await startStack(t, { env: { RUNNER_ALLOWED_USERS: 'nobody' } });
  const printLogin = 'echo "login $HOME|$USER|$LOGNAME|$SHELL"';
  const output = async (spec: Record<string, unknown>): Promise<string> => {
    const job = await s.run(spec);
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    const logs = await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${job.id}/logs`);
    return logs.body.items.map((i) => i.line).join('\n');
  };
  const nobody = passwdLogin('nobody');
  assert.notEqual(nobody.shell, '/bin/sh', "nobody's shell differs from the per-job default, so the two cases tell each other apart");
  assert.match(await output({ command: printLogin, user: 'nobody' }), new RegExp(`^login ${nobody.home}\\|nobody\\|nobody\\|${nobody.shell}$`, 'm'));
  assert.match(await output({ command: printLogin }), /^login \S+\|drover-\d+\|drover-\d+\|\/bin\/sh$/m, 'a uid of its own has no passwd entry: /bin/sh');
});

test('an empty shell field in passwd means /bin/sh', (t) => {
  const users = db(t, ROOT, PASSWD.replace('/home/builder:/bin/sh', '/home/builder:'));
  assert.equal(chooseJobUser('builder', users).user?.login.shell, '/bin/sh');
  assert.equal(chooseJobUser('root', users).user?.login.shell, '/bin/bash', 'a named shell is kept');
});
