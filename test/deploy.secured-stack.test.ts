// Drover run the way docker-compose.yml and deploy/k8s run it, on this machine: a Redis that loads the shipped ACL
// file; the API and the scheduler as uid 1000 and the runner as root with exactly the capabilities the deployment
// files give it (no-new-privileges, every other capability out of its bounding set), each service as its own
// process logging in as its own Redis user, its secrets in files with the owners and modes init-secrets.sh gives
// them; each job as a uid of its own (RUNNER_JOB_USER unset, as shipped). A job then tries to get at the runner's
// secrets; Redis's ACL LOG shows whether any service was ever denied a command, key or channel.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import type { JobRecord } from '@drover/core';
import { DEFAULT_JOB_UIDS } from '@drover/runner';
import { ROOT, asArray, asObj, parseYaml, readText } from './helpers/deploy.js';
import { renderAcl, sha256, startAclRedis, tempDir } from './helpers/deploy-secrets.js';
import { freePort } from './helpers/processes.js';
import { testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

const SERVICE_UID = 1000;
/** Jobs run as uids of their own from the default range, as in the shipped setups (no RUNNER_JOB_USER). */
const isJobUid = (uid: number): boolean => uid >= DEFAULT_JOB_UIDS.first && uid <= DEFAULT_JOB_UIDS.last;

/** The runner's capabilities as docker-compose.yml adds them (the k8s test checks deploy/k8s names the same). */
function shippedRunnerCaps(): string[] {
  const compose = asObj(parseYaml(readText('docker-compose.yml'), 'docker-compose.yml'), 'compose');
  return asArray(asObj(asObj(compose.services, 'services').runner, 'runner').cap_add, 'cap_add') as string[];
}

/** `drover <service>` from source as a real process, wrapped in setpriv (who it runs as, what it may do). */
function startAs(t: TestContext, setpriv: string[], service: string, env: Record<string, string>): { child: ChildProcess; started: Promise<void> } {
  const child = spawn('setpriv', [...setpriv, '--', process.execPath, '--conditions=drover-src', '--import', 'tsx', 'cli/src/main.ts', service], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, DROVER_LOG_LEVEL: 'info', DROVER_METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const started = new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      if (/"msg":"(api listening|scheduler started|runner started)"/.test(buf)) resolve();
      if (buf.length > 100_000) buf = buf.slice(-1000);
    });
    child.once('exit', (code, signal) => reject(new Error(`${service} exited (${code ?? signal}) before it started`)));
  });
  return { child, started };
}

/** A secret file as init-secrets.sh writes it: the value alone, owner `uid`, mode 0400. */
function secretFile(dir: string, name: string, uid: number, value: string): string {
  const path = join(dir, name);
  writeFileSync(path, value, { mode: 0o400 });
  chownSync(path, uid, uid);
  return path;
}

test('deployed as shipped: each service logs in as its own Redis user from a file; a job (another uid) cannot reach the runner\'s secrets; Redis never denies a service anything', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: the runner switches jobs to another user, and the secret files belong to root and uid 1000');
    return;
  }
  const dir = tempDir(t, 'secured');
  chmodSync(dir, 0o711); // the job user walks through it to its working directory
  const prefix = testPrefix();
  const passwords = { api: randomBytes(32).toString('hex'), scheduler: randomBytes(32).toString('hex'), runner: randomBytes(32).toString('hex') };

  // Redis with the rendered users, plus an administrator of the test's own to read ACL LOG and CLIENT LIST.
  const aclDir = join(dir, 'redis');
  mkdirSync(aclDir);
  const acl = renderAcl(aclDir, Object.entries(passwords).map(([s, p]) => `redis://drover-${s}:${p}@127.0.0.1:6379`), prefix);
  assert.equal(acl.status, 0, acl.stderr);
  const admin = randomBytes(24).toString('hex');
  chmodSync(join(aclDir, 'users.acl'), 0o600);
  appendFileSync(join(aclDir, 'users.acl'), `user test-admin on #${sha256(admin)} ~* &* +@all\n`);
  const port = await startAclRedis(t, join(aclDir, 'users.acl'), aclDir);
  const redis = new Redis({ port, host: '127.0.0.1', username: 'test-admin', password: admin, lazyConnect: true });
  t.after(() => redis.disconnect());
  await redis.connect();
  await redis.call('ACL', 'LOG', 'RESET');

  // Secrets as files: API's and scheduler's owned by uid 1000, the runner's by root in a directory only root enters.
  const url = (s: keyof typeof passwords): string => `redis://drover-${s}:${passwords[s]}@127.0.0.1:${port}`;
  const envKey = randomBytes(32).toString('hex');
  const adminToken = randomBytes(24).toString('hex');
  const dirs = { api: join(dir, 'api'), scheduler: join(dir, 'scheduler'), runner: join(dir, 'runner') };
  mkdirSync(dirs.api, { mode: 0o755 });
  mkdirSync(dirs.scheduler, { mode: 0o755 });
  mkdirSync(dirs.runner, { mode: 0o700 });
  const files = {
    api: { REDIS_URL_FILE: secretFile(dirs.api, 'redis-url', SERVICE_UID, url('api')), DROVER_ADMIN_TOKEN_FILE: secretFile(dirs.api, 'admin-token', SERVICE_UID, adminToken), DROVER_ENV_KEY_FILE: secretFile(dirs.api, 'env-key', SERVICE_UID, envKey) },
    scheduler: {
      REDIS_URL_FILE: secretFile(dirs.scheduler, 'redis-url', SERVICE_UID, url('scheduler')),
      DROVER_CALLBACK_SECRET_FILE: secretFile(dirs.scheduler, 'callback-secret', SERVICE_UID, randomBytes(32).toString('hex')),
      DROVER_ENV_KEY_FILE: secretFile(dirs.scheduler, 'env-key', SERVICE_UID, envKey),
    },
    runner: { REDIS_URL_FILE: secretFile(dirs.runner, 'redis-url', 0, url('runner')), DROVER_ENV_KEY_FILE: secretFile(dirs.runner, 'env-key', 0, envKey) },
  };

  const apiPort = await freePort();
  const common = { DROVER_PREFIX: prefix, SCHEDULER_TICK_MS: '20', DROVER_KILL_GRACE_MS: '500' };
  const asServiceUser = ['--reuid', String(SERVICE_UID), '--regid', String(SERVICE_UID), '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all'];
  const caps = shippedRunnerCaps();
  const asRunner = ['--no-new-privs', '--inh-caps=-all', `--bounding-set=-all,${caps.map((c) => `+${c.toLowerCase()}`).join(',')}`];
  const workDir = join(dir, 'jobs');
  const runnerId = `runner-${prefix.slice(5, 13)}`;
  const scheduler = startAs(t, asServiceUser, 'scheduler', { ...common, ...files.scheduler });
  const api = startAs(t, asServiceUser, 'api', { ...common, ...files.api, DROVER_PORT: String(apiPort), DROVER_RATE_LIMIT: '0' });
  const runner = startAs(t, asRunner, 'runner', { ...common, ...files.runner, RUNNER_WORK_DIR: workDir, RUNNER_ID: runnerId });
  await Promise.all([scheduler.started, api.started, runner.started]);

  const base = `http://127.0.0.1:${apiPort}`;
  const request = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const finished = (id: string): Promise<JobRecord> =>
    until(`job ${id} to finish`, async () => {
      const r = await request<JobRecord>('GET', `/v1/jobs/${id}`);
      return ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost'].includes(r.body.status) && r.body;
    });
  const logLines = async (id: string): Promise<string[]> => (await request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs`)).body.items.map((i) => i.line);

  // A job goes after the runner's secrets: its files, every process's environment and command line (with the
  // runner's Redis password as the needle, shipped in a file so the job's own command line does not hold it).
  const probe = await request<JobRecord>('POST', '/v1/jobs', {
    command: [
      'echo "uid=$(id -u) groups=$(id -G)"',
      `cat ${files.runner.REDIS_URL_FILE} >/dev/null 2>&1 && echo SECRET-READ`,
      `ls ${dirs.runner} >/dev/null 2>&1 && echo SECRETS-LISTED`,
      `cat ${files.api.REDIS_URL_FILE} >/dev/null 2>&1 && echo API-SECRET-READ`,
      'for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do grep -qF -f needle "$f" 2>/dev/null && echo "LEAK $f"; done',
      'echo "greeting=$GREETING shipped=$(cat shipped/data.txt)"',
      // Leave things the runner has to clean up: a read-only directory with a file in it.
      'mkdir -p left/ro && echo x > left/ro/f && chmod 0500 left/ro left',
    ].join('\n'),
    env: { GREETING: 'hello' },
    files: { needle: passwords.runner, 'shipped/data.txt': 'from the submitter' },
  });
  assert.equal(probe.status, 201, JSON.stringify(probe.body));
  const done = await finished(probe.body.id);
  const lines = await logLines(done.id);
  assert.equal(done.status, 'succeeded', lines.join('\n'));
  const jobUid = Number(/^uid=(\d+) groups=(\d+)$/.exec(lines[0] ?? '')?.[1]);
  assert.ok(isJobUid(jobUid), `a uid of its own (${lines[0]})`);
  assert.deepEqual(lines, [`uid=${jobUid} groups=${jobUid}`, 'greeting=hello shipped=from the submitter'], 'the job ran as its uid alone, read none of the secrets, found the password in no process');
  await until('the job directory to be removed', () => !existsSync(workDir) || readdirSync(workDir).length === 0, 10_000);
  assert.equal(statSync(files.runner.REDIS_URL_FILE).mode & 0o777, 0o400);

  // Cancel reaches the job's processes (another uid: the runner needs CAP_KILL for that).
  const tag = `61.${Math.floor(Math.random() * 1e6)}`;
  const long = await request<JobRecord>('POST', '/v1/jobs', { command: `sleep ${tag}` });
  assert.equal(long.status, 201);
  await until('the long job to run', async () => (await request<JobRecord>('GET', `/v1/jobs/${long.body.id}`)).body.status === 'running');
  const sleeping = (): number[] =>
    readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${tag}\0` && isJobUid(statSync(`/proc/${p}`).uid);
      } catch {
        return false;
      }
    }).map(Number);
  await until('the job process to appear', () => sleeping().length === 1);
  // 200 once the runner stopped it, 202 if that took longer than the API waits: the outcome is what counts.
  assert.ok([200, 202].includes((await request('POST', `/v1/jobs/${long.body.id}/cancel`)).status));
  assert.equal((await finished(long.body.id)).status, 'cancelled');
  await until('the cancelled job\'s process to be gone', () => sleeping().length === 0, 10_000);

  // Runner control travels over the runner's pub/sub channel; a schedule's run updates the schedule from the runner.
  assert.equal((await request('POST', `/v1/runners/${runnerId}/drain?force=1`)).status, 200);
  await until('the runner to drain', async () => (await request<{ state: string }>('GET', `/v1/runners/${runnerId}`)).body.state === 'draining');
  assert.equal((await request('POST', `/v1/runners/${runnerId}/resume`)).status, 200);
  await until('the runner to resume', async () => (await request<{ state: string }>('GET', `/v1/runners/${runnerId}`)).body.state === 'running');
  assert.equal((await request('POST', '/v1/schedules', { name: 'nightly', cron: '0 0 1 1 *', job: { command: 'echo scheduled' } })).status, 201);
  const run = await request<JobRecord>('POST', '/v1/schedules/nightly/trigger', {});
  assert.equal(run.status, 201, JSON.stringify(run.body));
  assert.equal((await finished(run.body.id)).status, 'succeeded');
  await until('the schedule to show its run', async () => (await request<{ lastState?: string }>('GET', '/v1/schedules/nightly')).body.lastState === 'succeeded');

  // Each service used its own user, nothing logged in as default, and Redis never refused any of them anything.
  const clients = String(await redis.call('CLIENT', 'LIST'));
  const users = new Set([...clients.matchAll(/\buser=(\S+)/g)].map((m) => m[1]));
  for (const s of ['drover-api', 'drover-scheduler', 'drover-runner']) assert.ok(users.has(s), `${s} is connected`);
  assert.ok(!users.has('default'), 'no connection as the default user');
  assert.deepEqual(await redis.call('ACL', 'LOG'), [], 'no command, key or channel was denied to a service');
});
