import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DroverError, loadPolicy, pathMatches, policyViolation, resolveAllowedProgram, type CommandPolicy } from '@drover/core';

const tempDir = (t: TestContext, name: string): string => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), `drover-${name}-`)));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

const locked = (rule: CommandPolicy['queues'][string]): CommandPolicy => ({ queues: { locked: rule } });
const argvJob = (argv: string[], extra: { env?: Record<string, string>; files?: Record<string, string> } = {}) =>
  ({ queue: 'locked', argv, env: extra.env ?? {}, ...(extra.files ? { files: extra.files } : {}) });

test('"*" matches within one segment and never crosses "/"; "**" matches any number of whole segments', () => {
  assert.equal(pathMatches('/opt/tools/bin/*', '/opt/tools/bin/deploy'), true);
  assert.equal(pathMatches('/opt/tools/bin/*', '/opt/tools/bin/sub/deploy'), false);
  assert.equal(pathMatches('/opt/tools/bin/*', '/opt/tools/bin'), false);
  assert.equal(pathMatches('/usr/local/bin/backup-*', '/usr/local/bin/backup-db'), true);
  assert.equal(pathMatches('/usr/local/bin/backup-*', '/usr/local/bin/backup-x/../../../bin/sh'), false);
  assert.equal(pathMatches('/opt/*/bin/tool', '/opt/a/bin/tool'), true);
  assert.equal(pathMatches('/opt/*/bin/tool', '/opt/a/b/bin/tool'), false);
  assert.equal(pathMatches('/opt/**', '/opt/a'), true);
  assert.equal(pathMatches('/opt/**', '/opt/a/b/c'), true);
  assert.equal(pathMatches('/opt/**/bin/*', '/opt/bin/x'), true, '** may match no segment');
  assert.equal(pathMatches('/opt/**/bin/*', '/opt/a/b/bin/x'), true);
  assert.equal(pathMatches('/opt/**/bin/*', '/opt/a/b/bin/x/y'), false);
  assert.equal(pathMatches('/opt/**', '/optional/x'), false);
  assert.equal(pathMatches('/usr/bin/true', '/usr/bin/true'), true);
  assert.equal(pathMatches('/usr/bin/true', '/usr/bin/truex'), false);
  assert.equal(pathMatches('/usr/bin/t.ue', '/usr/bin/true'), false, 'regex characters are literal');
});

test('several "**" against a path of thousands of segments: matching stays linear (a backtracking matcher would hang here)', () => {
  const deep = `/${Array.from({ length: 5000 }, () => 'a').join('/')}`;
  assert.equal(pathMatches('/**/a/**/a/**/a/**/b', deep), false);
  assert.equal(pathMatches('/**/a/**/a/**/a/**/a', deep), true);
  assert.equal(pathMatches('/a/**/*/a', deep), true);
});

test('".", ".." and empty segments are refused before matching, whatever the pattern', () => {
  const policy = locked({ shell: false, allow: ['/opt/tools/bin/*', '/opt/**'] });
  for (const program of ['/opt/tools/bin/../../../../bin/sh', '/opt/tools/bin/./x', '/opt/tools/bin//x', '/opt/tools/bin/x/', '/opt/tools/bin/..', '/opt/..']) {
    assert.equal(pathMatches('/opt/**', program), false, program);
    const why = policyViolation(policy, argvJob([program, '-c', 'id']));
    assert.match(why ?? '', /queue "locked" allows only programs named by a clean absolute path/, program);
    assert.ok(why?.includes(JSON.stringify(program)), `${program}: the refusal names the path`);
  }
  assert.match(policyViolation(policy, argvJob(['/opt/tools/bin/../../../../bin/sh']))!, /has a "\." or "\.\." segment/);
  assert.match(policyViolation(policy, argvJob(['/opt/tools/bin//x']))!, /empty segment/);
  assert.equal(policyViolation(policy, argvJob(['/opt/tools/bin/x'])), null);
});

test('a relative or bare argv[0] is refused under an allow-list (the API cannot know the runner\'s PATH or cwd)', () => {
  const policy = locked({ shell: false, allow: ['/usr/bin/*', '/**'] });
  for (const program of ['true', './true', 'bin/true', '../usr/bin/true']) {
    assert.match(policyViolation(policy, argvJob([program]))!, /is not an absolute path/, program);
  }
  // Without an allow-list names stay names (looked up through PATH by the runner).
  assert.equal(policyViolation(locked({ shell: false }), argvJob(['true'])), null);
});

test('scripts stay refused under shell: false; interpreters named by path are matched segment-wise', () => {
  const script = (interpreter: string) => ({ queue: 'locked', script: 'id', interpreter, env: {} });
  assert.match(policyViolation(locked({ shell: false, allow: ['/usr/bin/*'] }), script('/usr/bin/python3'))!, /scripts included/);
  const open = locked({ shell: true, allow: ['/usr/bin/*'] });
  assert.equal(policyViolation(open, script('/usr/bin/python3')), null);
  assert.match(policyViolation(open, script('/usr/bin/../bin/sh'))!, /"\." or "\.\." segment/);
  assert.match(policyViolation(open, script('/usr/bin/sub/sh'))!, /is not one/);
  assert.match(policyViolation(open, script('sh'))!, /is not an absolute path/);
});

test('allow-list patterns must be absolute and clean: a relative one is a configuration error naming the entry', (t) => {
  const dir = tempDir(t, 'policy');
  const write = (policy: unknown): string => {
    const path = join(dir, `p${Math.random()}.json`);
    writeFileSync(path, JSON.stringify(policy));
    return path;
  };
  const bad = write({ queues: { ci: { allow: ['/usr/bin/*', 'bin/*', '/opt/../bin/*', '/opt/a**'], env: ['APP_*', 'BAD-NAME'] }, x: { allows: ['/x'] }, y: { shell: 'no' } } });
  assert.throws(() => loadPolicy(bad), (err: unknown) => {
    assert.ok(err instanceof DroverError);
    assert.equal(err.code, 'CONFIG');
    assert.match(err.message, /queues\["ci"\]\.allow\[1\] "bin\/\*" is not an absolute path/);
    assert.match(err.message, /queues\["ci"\]\.allow\[2\] "\/opt\/\.\.\/bin\/\*" has a "\." or "\.\." segment/);
    assert.match(err.message, /queues\["ci"\]\.allow\[3\] "\/opt\/a\*\*" uses "\*\*" inside a segment/);
    assert.match(err.message, /queues\["ci"\]\.env\[1\] "BAD-NAME" is not a variable name/);
    assert.match(err.message, /queues\["x"\]\.allows is not a policy setting/, 'a misspelt key would silently open the queue');
    assert.match(err.message, /queues\["y"\]\.shell must be true or false/);
    assert.doesNotMatch(err.message, /allow\[0\]/);
    return true;
  });
  const good = loadPolicy(write({ queues: { ci: { shell: false, allow: ['/usr/bin/*', '/opt/**/bin/*'], env: ['APP_*', 'LOG_LEVEL'] } } }));
  assert.deepEqual(good?.queues.ci?.env, ['APP_*', 'LOG_LEVEL']);
  // A policy built in code with a bad pattern fails closed: the pattern matches nothing.
  assert.match(policyViolation(locked({ allow: ['*'] }), argvJob(['/usr/bin/true']))!, /is not one/);
});

test('under shell: false a job may not set env names that change what runs; only exact (case-sensitive) names count', () => {
  const policy = locked({ shell: false, allow: ['/usr/bin/*'] });
  const names = ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'BASH_ENV', 'ENV', 'PATH', 'GCONV_PATH', 'IFS', 'PYTHONSTARTUP', 'PYTHONPATH',
    'PYTHONHOME', 'NODE_OPTIONS', 'PERL5OPT', 'PERL5LIB', 'RUBYOPT', 'LOCPATH', 'MALLOC_CHECK_', 'HOSTALIASES', 'RESOLV_HOST_CONF', 'TMPDIR',
    'GETCONF_DIR', 'GLIBC_TUNABLES', 'NLSPATH', 'RES_OPTIONS', 'TZDIR', 'LOCALDOMAIN', 'NIS_PATH', 'SHELLOPTS', 'PS4', 'HOME', 'GIT_CONFIG_COUNT', 'OPENSSL_CONF'];
  for (const name of names) {
    const why = policyViolation(policy, argvJob(['/usr/bin/true'], { env: { [name]: './x.so' } }));
    assert.match(why ?? '', new RegExp(`queue "locked" \\(shell: false\\) does not let a job set env ${name}:`), name);
  }
  // Linux env names are case-sensitive: the loader reads LD_PRELOAD only.
  for (const name of ['ld_preload', 'Ld_Preload', 'path', 'APP_LD_PRELOAD', 'PYTHONUNBUFFERED', 'LANG', 'TZ']) {
    assert.equal(policyViolation(policy, argvJob(['/usr/bin/true'], { env: { [name]: '1' } })), null, name);
  }
  // Where shell commands are allowed anyway, the list does not apply: a shell could set anything itself.
  assert.equal(policyViolation(locked({ shell: true }), { queue: 'locked', command: 'true', env: { LD_PRELOAD: 'x' } }), null);
});

test('a per-policy env allow-list admits only its names; denied names stay denied whatever it says', () => {
  const policy = locked({ shell: false, allow: ['/usr/bin/*'], env: ['APP_*', 'LOG_LEVEL', 'ld_preload'] });
  const run = (env: Record<string, string>) => policyViolation(policy, argvJob(['/usr/bin/true'], { env }));
  assert.equal(run({ APP_MODE: 'x', APP_: 'y', LOG_LEVEL: 'debug' }), null);
  assert.match(run({ LOG_LEVELS: 'x' })!, /lets a job set only env APP_\*, LOG_LEVEL, ld_preload; LOG_LEVELS is not one/);
  assert.match(run({ app_mode: 'x' })!, /app_mode is not one/, 'matching is case-sensitive');
  assert.equal(run({ ld_preload: 'x' }), null, 'an ordinary variable that happens to look like the loader\'s');
  const everything = locked({ shell: false, allow: ['/usr/bin/*'], env: ['*', 'LD_*'] });
  assert.match(policyViolation(everything, argvJob(['/usr/bin/true'], { env: { LD_PRELOAD: 'x' } }))!, /does not let a job set env LD_PRELOAD/);
  // With shell commands allowed, an env allow-list still limits the names (commands included).
  assert.match(policyViolation(locked({ env: ['APP_*'] }), { queue: 'locked', command: 'true', env: { OTHER: '1' } })!, /OTHER is not one/);
});

test('files may not carry the allowed program\'s name', () => {
  const policy = locked({ shell: false, allow: ['/usr/bin/*'] });
  assert.match(policyViolation(policy, argvJob(['/usr/bin/true'], { files: { true: '#!/bin/sh\nid' } }))!, /files may not carry the program's name \("true"/);
  assert.match(policyViolation(policy, argvJob(['/usr/bin/true'], { files: { 'bin/true': 'x' } }))!, /"bin\/true"/);
  assert.equal(policyViolation(policy, argvJob(['/usr/bin/true'], { files: { 'true.conf': 'x', 'x.so': 'y' } })), null);
});

test('the runner resolves symlinks: a link in an allowed directory to /bin/sh is refused; an allowed file runs by its real path', (t) => {
  const dir = tempDir(t, 'allowed');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  copyFileSync('/usr/bin/true', join(bin, 'tool'));
  chmodSync(join(bin, 'tool'), 0o755);
  symlinkSync('/bin/sh', join(bin, 'sh'));
  symlinkSync('tool', join(bin, 'alias'));
  mkdirSync(join(bin, 'sub'));
  const policy = locked({ shell: false, allow: [`${bin}/*`] });
  const jobRoot = tempDir(t, 'jobs');
  const resolve = (program: string) => resolveAllowedProgram(policy, 'locked', program, { jobRoot });

  assert.equal(policyViolation(policy, argvJob([join(bin, 'sh')])), null, 'by name it passes the API');
  const sh = resolve(join(bin, 'sh'));
  assert.ok('violation' in sh);
  assert.match(sh.violation, /resolves to "\/usr\/bin\/(dash|bash|sh)", which is not one/);
  assert.deepEqual(resolve(join(bin, 'tool')), { path: join(bin, 'tool') });
  assert.deepEqual(resolve(join(bin, 'alias')), { path: join(bin, 'tool') }, 'a link inside the allowed directory runs as its target');
  assert.match((resolve(join(bin, 'missing')) as { violation: string }).violation, /cannot be resolved on this runner \(ENOENT\)/);
  assert.match((resolve(join(bin, 'sub')) as { violation: string }).violation, /is not a regular file/);
  assert.match((resolve(`${bin}/../bin/tool`) as { violation: string }).violation, /"\." or "\.\." segment/);
  assert.match((resolve('tool') as { violation: string }).violation, /not an absolute path/);
  // Other queues (no allow-list) are not resolved: names stay as given.
  assert.deepEqual(resolveAllowedProgram(policy, 'other', 'true', { jobRoot }), { path: 'true' });
});

test('the runner refuses a program inside its job directory, even where the allow-list covers it', (t) => {
  const root = tempDir(t, 'root');
  const jobRoot = join(root, 'jobs');
  mkdirSync(join(jobRoot, 'job-1'), { recursive: true });
  copyFileSync('/usr/bin/true', join(jobRoot, 'job-1', 'x'));
  chmodSync(join(jobRoot, 'job-1', 'x'), 0o755);
  symlinkSync(jobRoot, join(root, 'link'));
  const policy = locked({ shell: false, allow: [`${root}/**`] });
  for (const program of [join(jobRoot, 'job-1', 'x'), join(root, 'link', 'job-1', 'x')]) {
    const r = resolveAllowedProgram(policy, 'locked', program, { jobRoot });
    assert.ok('violation' in r, program);
    assert.match(r.violation, /resolves into the job directory/);
  }
  // The job root given through a symlink is resolved too.
  const viaLink = resolveAllowedProgram(policy, 'locked', join(jobRoot, 'job-1', 'x'), { jobRoot: join(root, 'link') });
  assert.ok('violation' in viaLink);
});
