import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DEFAULT_SPEC_DEFAULTS, JobStore, createRedis, createTransport, newJobId, normalizeJobSpec, type JobRecord, type JobTemplate } from '@drover/core';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';

/**
 * The command policy attacked the way the issue did, through HTTP and around it (straight into the store and the
 * broker). Every payload would create a marker file if it ran; a control run in an unrestricted queue shows that
 * it does, so a marker that stays absent proves the command never ran.
 */

interface World {
  root: string;
  bin: string;
  marks: string;
  work: string;
  mark(name: string): string;
}

/** An allowed tools directory (a harmless `tool`, a bash script `deploy`, a link `sh` to /bin/sh), a marker dir, a work dir. */
function makeWorld(t: TestContext): World {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'drover-policy-e2e-')));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  chmodSync(root, 0o755);
  const bin = join(root, 'bin');
  const marks = join(root, 'marks');
  const work = join(root, 'work');
  mkdirSync(bin, { mode: 0o755 });
  mkdirSync(work, { mode: 0o755 });
  mkdirSync(marks);
  // Jobs may run as an unprivileged user: they must be able to leave a mark if they ever run.
  chmodSync(marks, 0o777);
  copyFileSync('/usr/bin/true', join(bin, 'tool'));
  chmodSync(join(bin, 'tool'), 0o755);
  writeFileSync(join(bin, 'deploy'), '#!/bin/bash\necho deploying\n', { mode: 0o755 });
  symlinkSync('/bin/sh', join(bin, 'sh'));
  return { root, bin, marks, work, mark: (name) => join(marks, name) };
}

const POLICY_QUEUES = ['locked', 'held', 'envlist', 'wide'];

async function startPolicyStack(t: TestContext, w: World): Promise<Stack> {
  const locked = { shell: false, allow: [`${w.bin}/*`, '/usr/bin/true'] };
  const policy = {
    queues: {
      locked,
      held: locked,
      envlist: { shell: false, allow: ['/usr/bin/true'], env: ['APP_*', 'LOG_LEVEL'] },
      wide: { shell: false, allow: [`${w.root}/**`] },
    },
  };
  const path = join(w.root, 'policy.json');
  writeFileSync(path, JSON.stringify(policy));
  // No scheduler: a refused job that were retried or restarted would then stay delayed, and fail the wait for its end.
  return startStack(t, { scheduler: false, env: { DROVER_POLICY_FILE: path, RUNNER_QUEUES: ['open', ...POLICY_QUEUES].join(','), RUNNER_WORK_DIR: w.work } });
}

/** Writes a job straight into the store and the broker, as anyone holding Redis or broker credentials could. */
async function bypassApi(t: TestContext, s: Stack): Promise<(job: JobTemplate) => Promise<string>> {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const transport = createTransport(s.config);
  t.after(() => transport.close());
  await transport.ready();
  const store = new JobStore(redis, s.prefix);
  return async (job) => {
    const id = newJobId();
    const spec = normalizeJobSpec(job, DEFAULT_SPEC_DEFAULTS);
    await store.create([{ id, spec }]);
    await transport.publish([{ jobId: id, queue: spec.queue }]);
    return id;
  };
}

/** A shared object whose constructor (run by the loader before the program's main) creates `marker`. */
function preloadLibrary(t: TestContext, dir: string, marker: string): string | undefined {
  const c = join(dir, 'mark.c');
  writeFileSync(c, '#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void mark(void) { int fd = open(MARKER, O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd); }\n');
  try {
    execFileSync('cc', ['-shared', '-fPIC', `-DMARKER="${marker}"`, '-o', join(dir, 'mark.so'), c], { stdio: 'ignore' });
  } catch {
    t.diagnostic('no C compiler: the LD_PRELOAD payload is not built, only refused');
    return undefined;
  }
  return readFileSync(join(dir, 'mark.so')).toString('base64');
}

type Refusal = { error: { code: string; message: string } };

async function assertRefusedByRunner(s: Stack, id: string, reason: RegExp, marker: string): Promise<JobRecord> {
  const job = await s.waitFor(id);
  assert.equal(job.status, 'failed', `${id}: ${JSON.stringify(job)}`);
  assert.match(job.error ?? '', /^refused by the runner's command policy: /);
  assert.match(job.error ?? '', reason);
  assert.equal(job.attempts, 1, 'a refusal is final: no retry, every attempt would be refused again');
  assert.equal(job.exitCode, null, 'no process was started');
  assert.equal(job.outputBytes, 0);
  assert.equal(existsSync(marker), false, `the command ran: ${marker} exists`);
  return job;
}

test('command policy through the API: each bypass of the issue and its variants is a 403 naming the rule, and nothing is stored', async (t) => {
  const w = makeWorld(t);
  const s = await startPolicyStack(t, w);
  const so = preloadLibrary(t, w.root, w.mark('preload')) ?? Buffer.from('not a library').toString('base64');
  const touch = (name: string): string[] => ['-c', `touch ${w.mark(name)}`];
  const refused: [string, JobTemplate, RegExp][] = [
    ['.. out of the allowed dir', { queue: 'locked', argv: [`${w.bin}/../../../../bin/sh`, ...touch('dotdot')] }, /named by a clean absolute path; ".*" has a "\." or "\.\." segment/],
    ['. segment', { queue: 'locked', argv: [`${w.bin}/./tool`] }, /"\." or "\.\." segment/],
    ['empty segment', { queue: 'locked', argv: [`${w.bin}//tool`] }, /empty segment/],
    ['trailing slash', { queue: 'locked', argv: [`${w.bin}/tool/`] }, /empty segment/],
    ['a deeper path under *', { queue: 'locked', argv: [`${w.bin}/sub/tool`] }, /allows only programs matching .*; ".*\/sub\/tool" is not one/],
    ['bare name', { queue: 'locked', argv: ['tool'] }, /"tool" is not an absolute path/],
    ['relative path', { queue: 'locked', argv: ['./tool'] }, /"\.\/tool" is not an absolute path/],
    ['LD_PRELOAD with the library in files', { queue: 'locked', argv: ['/usr/bin/true'], env: { LD_PRELOAD: './x.so' }, files: { 'x.so': { base64: so } } }, /does not let a job set env LD_PRELOAD/],
    ['LD_LIBRARY_PATH', { queue: 'locked', argv: ['/usr/bin/true'], env: { LD_LIBRARY_PATH: '.' } }, /env LD_LIBRARY_PATH/],
    ['BASH_ENV behind an allowed bash script', { queue: 'locked', argv: [`${w.bin}/deploy`], env: { BASH_ENV: './rc' }, files: { rc: `touch ${w.mark('bashenv')}` } }, /env BASH_ENV/],
    ['PATH', { queue: 'locked', argv: [`${w.bin}/deploy`], env: { PATH: '.' } }, /env PATH/],
    ['GCONV_PATH', { queue: 'locked', argv: ['/usr/bin/true'], env: { GCONV_PATH: '.' } }, /env GCONV_PATH/],
    ['a name outside the env allow-list', { queue: 'envlist', argv: ['/usr/bin/true'], env: { OTHER: '1' } }, /lets a job set only env APP_\*, LOG_LEVEL; OTHER is not one/],
    ['LD_PRELOAD under an env allow-list', { queue: 'envlist', argv: ['/usr/bin/true'], env: { APP_MODE: 'x', LD_PRELOAD: './x.so' } }, /env LD_PRELOAD/],
    ['a file named like the program', { queue: 'locked', argv: [`${w.bin}/tool`], files: { tool: '#!/bin/sh\nid' } }, /files may not carry the program's name/],
    ['a shell command', { queue: 'locked', command: `touch ${w.mark('command')}` }, /forbids shell commands/],
    ['a script', { queue: 'locked', script: `touch ${w.mark('script')}`, interpreter: 'sh' }, /scripts included/],
  ];
  for (const [what, job, rule] of refused) {
    const res = await s.request<Refusal>('POST', '/v1/jobs', job);
    assert.equal(res.status, 403, `${what}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, 'FORBIDDEN', what);
    assert.match(res.body.error.message, /refused by policy: /, what);
    assert.match(res.body.error.message, rule, what);
  }
  const batch = await s.request<Refusal>('POST', '/v1/jobs/batch', { jobs: [{ queue: 'locked', argv: ['/usr/bin/true'] }, refused[0]![1]] });
  assert.equal(batch.status, 403, 'a batch with one bypass is refused whole');
  assert.match(batch.body.error.message, /^jobs\/1: refused by policy/);
  const schedule = await s.request('POST', '/v1/schedules', { name: 'sneaky', cron: '@hourly', job: refused[7]![1] });
  assert.equal(schedule.status, 403, 'schedules are checked the same way');
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length, 0, 'nothing was stored');
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/schedules')).body.items.length, 0, 'no schedule was stored');

  // What the policy admits still runs: an allowed program by its path, a name on the env allow-list.
  assert.equal((await s.run({ queue: 'locked', argv: [`${w.bin}/tool`, '-c', 'x'], retries: 2 })).status, 'succeeded');
  assert.equal((await s.run({ queue: 'envlist', argv: ['/usr/bin/true'], env: { APP_MODE: 'x', LOG_LEVEL: 'debug' } })).status, 'succeeded');
  assert.equal((await s.run({ queue: 'locked', argv: ['/usr/bin/true'], env: { ld_preload: './x.so' } })).status, 'succeeded', 'names are case-sensitive');
  assert.deepEqual(readdirSync(w.marks), [], 'no payload ran');
});

test('command policy on the runner: jobs written around the API are refused before anything runs, once, with the reason', async (t) => {
  const w = makeWorld(t);
  const s = await startPolicyStack(t, w);
  const bypass = await bypassApi(t, s);
  const so = preloadLibrary(t, w.root, w.mark('preload'));

  // The payloads work: in a queue without a policy each one leaves its mark.
  if (so) {
    const control = await s.run({ queue: 'open', argv: ['/usr/bin/true'], env: { LD_PRELOAD: './x.so' }, files: { 'x.so': { base64: so } } });
    assert.equal(control.status, 'succeeded', control.error ?? '');
    assert.equal(existsSync(w.mark('preload')), true, 'the LD_PRELOAD payload runs where nothing stops it');
    rmSync(w.mark('preload'));
  }
  const bashControl = await s.run({ queue: 'open', argv: [`${w.bin}/deploy`], env: { BASH_ENV: './rc' }, files: { rc: `touch ${w.mark('bashenv')}\n` } });
  assert.equal(bashControl.status, 'succeeded', bashControl.error ?? '');
  assert.equal(existsSync(w.mark('bashenv')), true, 'the BASH_ENV payload runs where nothing stops it');
  rmSync(w.mark('bashenv'));

  const cases: [string, JobTemplate, RegExp, string][] = [
    ['..', { queue: 'locked', argv: [`${w.bin}/../../../../bin/sh`, '-c', `touch ${w.mark('dotdot')}`], retries: 3 }, /"\." or "\.\." segment/, 'dotdot'],
    ['bare name', { queue: 'locked', argv: ['sh', '-c', `touch ${w.mark('bare')}`], retries: 3 }, /not an absolute path/, 'bare'],
    ['BASH_ENV', { queue: 'locked', argv: [`${w.bin}/deploy`], env: { BASH_ENV: './rc' }, files: { rc: `touch ${w.mark('bashenv')}\n` }, retries: 3 }, /env BASH_ENV/, 'bashenv'],
    ['PATH', { queue: 'locked', argv: [`${w.bin}/deploy`], env: { PATH: '.' }, retries: 3 }, /env PATH/, 'path'],
    ['env allow-list', { queue: 'envlist', argv: ['/usr/bin/true'], env: { OTHER: 'x' }, retries: 3 }, /OTHER is not one/, 'other'],
    ['shell command', { queue: 'locked', command: `touch ${w.mark('command')}`, retries: 3 }, /forbids shell commands/, 'command'],
    ['daemon', { queue: 'locked', type: 'daemon', intervalMs: 10, argv: [`${w.bin}/../../../../bin/sh`, '-c', `touch ${w.mark('daemon')}`] }, /segment/, 'daemon'],
  ];
  if (so) cases.push(['LD_PRELOAD', { queue: 'locked', argv: ['/usr/bin/true'], env: { LD_PRELOAD: './x.so' }, files: { 'x.so': { base64: so } }, retries: 3 }, /env LD_PRELOAD/, 'preload']);
  for (const [what, job, reason, mark] of cases) {
    const id = await bypass(job);
    await t.test(what, async () => {
      await assertRefusedByRunner(s, id, reason, w.mark(mark));
    });
  }

  // Refused only by the runner (the API cannot see the runner's filesystem): a link in the allowed dir to /bin/sh,
  // and a program inside the job directory the runner writes jobs' files to.
  const viaApi = await s.submit({ queue: 'locked', argv: [`${w.bin}/sh`, '-c', `touch ${w.mark('symlink')}`], retries: 2 });
  await assertRefusedByRunner(s, viaApi.id, /resolves to "\/usr\/bin\/[a-z]+", which is not one/, w.mark('symlink'));
  mkdirSync(join(w.work, 'planted'));
  writeFileSync(join(w.work, 'planted', 'x'), `#!/bin/sh\ntouch ${w.mark('planted')}\n`, { mode: 0o755 });
  const planted = await s.submit({ queue: 'wide', argv: [join(w.work, 'planted', 'x')] });
  await assertRefusedByRunner(s, planted.id, /resolves into the job directory/, w.mark('planted'));
  assert.deepEqual(readdirSync(w.marks), [], 'no payload ran');
});

test('a symlink swapped in between the API check and the runner: the runner checks and runs what the name resolves to then', async (t) => {
  const w = makeWorld(t);
  const s = await startPolicyStack(t, w);
  const swap = join(w.bin, 'swap');
  copyFileSync('/usr/bin/true', swap);
  chmodSync(swap, 0o755);
  const argv = [swap, '-c', `touch ${w.mark('swapped')}`];
  const before = await s.run({ queue: 'held', argv });
  assert.equal(before.status, 'succeeded', 'the allowed program runs (and ignores the arguments)');

  assert.equal((await s.request('POST', '/v1/queues/held/pause')).status, 200);
  const held = await s.submit({ queue: 'held', argv, retries: 2 });
  // Accepted by the API against the real file; now the name points at a shell.
  rmSync(swap);
  symlinkSync('/bin/sh', swap);
  assert.equal((await s.request('POST', '/v1/queues/held/resume')).status, 200);
  await assertRefusedByRunner(s, held.id, /resolves to "\/usr\/bin\/[a-z]+", which is not one/, w.mark('swapped'));
});
