import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { isTerminal, type JobRecord } from '@drover/core';
import { DEFAULT_JOB_UIDS, DEFAULT_SPAWNER_PATH } from '@drover/runner';
import { freePort, spawnDrover, startService, startServiceReady } from './helpers/processes.js';
import { AMQP_URL, testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

/*
 * The promise: a job cannot reach the secrets of the runner that runs it, of its spawner helper or of the other
 * services (their environment, memory, secret files, command lines). Everything runs as separate processes, as in
 * production, with recognisable fake secrets; each job sweeps /proc like an attacker would, and the test looks for
 * the secrets in what the job could print. The root opt-in run is the control: the same sweep does find them.
 */

const hex = (n: number): string => randomBytes(n).toString('hex');

const NOBODY = (() => {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
  const [, , uid, gid, , home] = line?.split(':') ?? [];
  return { uid: Number(uid), gid: Number(gid), home: home ?? '' };
})();

/** What a curious job does: who am I, then every environ and cmdline it can read, the runner's and spawner's memory, the secret files. */
const SWEEP = String.raw`
id
echo "login HOME=$HOME USER=$USER LOGNAME=$LOGNAME"
echo "jobdir $DROVER_JOB_DIR"
echo "parent $PPID"
echo "self-environ $(tr '\0' ' ' < /proc/$$/environ)"
for d in /proc/[0-9]*; do
  p=$(basename $d)
  if e=$(tr '\0' ' ' 2>/dev/null < $d/environ); then echo "environ $p: $e"; fi
  if c=$(tr '\0' ' ' 2>/dev/null < $d/cmdline); then echo "cmdline $p: $c"; fi
done
for p in $PPID $RUNNER_PID; do
  echo "read environ $p: $( { cat /proc/$p/environ 2>&1; echo " rc=$?"; } | tr '\0' ' ')"
  echo "read maps $p: $(head -c 300 /proc/$p/maps 2>&1 | tr '\n' ' ')"
  addr=$(head -n 1 /proc/$p/maps 2>/dev/null | cut -d- -f1)
  [ -n "$addr" ] || addr=0
  echo "read mem $p: $(dd if=/proc/$p/mem bs=4096 count=1 skip=$(( 0x$addr / 4096 )) 2>&1 >/dev/null | tr '\n' ' ')"
done
for f in $SECRET_FILES; do echo "read file $f: $(cat $f 2>&1)"; done
exit 0
`;

interface Secrets {
  redisPassword: string;
  callbackSecret: string;
  callbackSecretFromFile: string;
  adminToken: string;
}

/** A Redis of the test's own with a password, given in a config file: on its command line every job could read it. */
async function passwordRedis(t: TestContext, dir: string, password: string): Promise<number> {
  const port = await freePort();
  const conf = join(dir, 'redis.conf');
  writeFileSync(conf, `bind 127.0.0.1\nport ${port}\nrequirepass ${password}\ndir ${dir}\nsave ""\nappendonly no\nmaxmemory-policy noeviction\n`, { mode: 0o600 });
  const server = spawn('redis-server', [conf], { stdio: 'ignore' });
  t.after(() => {
    if (server.exitCode === null) server.kill('SIGKILL');
  });
  await until('redis-server with a password', async () => {
    const probe = new Redis(port, '127.0.0.1', { password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    const up = await probe.connect().then(() => probe.ping(), () => null);
    probe.disconnect();
    return up === 'PONG';
  }, 10_000);
  return port;
}

interface SecretStack {
  secrets: Secrets;
  secretFiles: string[];
  prefix: string;
  redisUrl: string;
  /** Environment every runner gets: the Redis URL with its password, the callback secret, the admin token file. */
  runnerEnv: Record<string, string>;
  run(queue: string, env: Record<string, string>): Promise<{ job: JobRecord; output: string }>;
}

/** API, scheduler and the password Redis as separate processes, every one of them holding the secrets. */
async function startSecretStack(t: TestContext): Promise<SecretStack> {
  assert.ok(existsSync(DEFAULT_SPAWNER_PATH), 'the spawner helper is built (npm run build)');
  const dir = mkdtempSync(join(tmpdir(), 'drover-isolation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secrets: Secrets = {
    redisPassword: `redispw${hex(16)}`,
    callbackSecret: `cbsecret${hex(16)}`,
    callbackSecretFromFile: `cbfile${hex(16)}`,
    adminToken: `admintoken${hex(16)}`,
  };
  // Root-owned 0600 files, as a container runtime mounts secrets.
  const callbackFile = join(dir, 'callback-secret');
  const tokenFile = join(dir, 'admin-token');
  writeFileSync(callbackFile, `${secrets.callbackSecretFromFile}\n`, { mode: 0o600 });
  writeFileSync(tokenFile, `${secrets.adminToken}\n`, { mode: 0o600 });
  const port = await passwordRedis(t, dir, secrets.redisPassword);
  const redisUrl = `redis://:${secrets.redisPassword}@127.0.0.1:${port}`;
  const prefix = testPrefix();

  const apiPort = await freePort();
  const url = `http://127.0.0.1:${apiPort}`;
  startService(t, 'api', prefix, {
    REDIS_URL: redisUrl, DROVER_PORT: String(apiPort), DROVER_ADMIN_TOKEN_FILE: tokenFile, DROVER_CALLBACK_SECRET: secrets.callbackSecret, DROVER_RATE_LIMIT: '0',
  });
  await startServiceReady(t, 'scheduler', prefix, { REDIS_URL: redisUrl, DROVER_CALLBACK_SECRET: '', DROVER_CALLBACK_SECRET_FILE: callbackFile });
  await until('the API', () => fetch(`${url}/healthz`).then((r) => r.ok, () => false));

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${secrets.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  const run: SecretStack['run'] = async (queue, env) => {
    const submitted = await call<JobRecord>('POST', '/v1/jobs', { queue, command: SWEEP, env, timeoutMs: 60_000 });
    const job = await until(`job ${submitted.id} in ${queue}`, async () => {
      const j = await call<JobRecord>('GET', `/v1/jobs/${submitted.id}`);
      return isTerminal(j.status) && j;
    }, 60_000);
    const lines: string[] = [];
    for (let cursor: string | null = null; ;) {
      const page: { items: { line: string }[]; nextCursor: string | null; done: boolean } =
        await call('GET', `/v1/jobs/${job.id}/logs?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
      lines.push(...page.items.map((i) => i.line));
      if (page.done || page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    return { job, output: lines.join('\n') };
  };
  return {
    secrets, secretFiles: [callbackFile, tokenFile], prefix, redisUrl, run,
    runnerEnv: {
      REDIS_URL: redisUrl, DROVER_CALLBACK_SECRET: secrets.callbackSecret, DROVER_ADMIN_TOKEN_FILE: tokenFile,
      RUNNER_OUTPUT_CAP: String(64 * 1024 * 1024), DROVER_KILL_GRACE_MS: '200',
    },
  };
}

function startRunner(t: TestContext, s: SecretStack, queue: string, env: Record<string, string>): Promise<ChildProcess> {
  return startServiceReady(t, 'runner', s.prefix, { ...s.runnerEnv, RUNNER_QUEUES: queue, RUNNER_ID: `${queue}-${hex(3)}`, ...env });
}

function leaked(s: SecretStack, output: string): string[] {
  return (Object.entries(s.secrets) as [string, string][]).filter(([, value]) => output.includes(value)).map(([name]) => name);
}

/** The sweep's own line about `what` of process `pid` ("read environ 123: ..."). */
function probe(output: string, what: string, pid: number | undefined): string {
  const line = output.split('\n').find((l) => l.startsWith(`read ${what} ${pid}: `));
  assert.ok(line, `the job probed the ${what} of ${pid}`);
  return line;
}

/** Checks that the sweep read what a job may read, so that finding nothing means something. */
function assertSweepWorked(output: string, job: JobRecord, runnerPid: number): void {
  assert.equal(job.status, 'succeeded', job.error ?? '');
  assert.equal(job.truncated, false, 'the whole sweep was stored');
  assert.match(output, new RegExp(`^self-environ .*DROVER_JOB_ID=${job.id}`, 'm'), 'the job read its own environ: it is dumpable after exec');
  assert.match(output, new RegExp(`^cmdline ${runnerPid}: .*cli/src/main\\.ts runner`, 'm'), "the job read the runner's command line");
  const cmdlines = output.split('\n').filter((l) => l.startsWith('cmdline ')).length;
  assert.ok(cmdlines >= 5, `the job read the command lines of the services (${cmdlines})`);
}

function parentOf(output: string): number {
  return Number(/^parent (\d+)$/m.exec(output)?.[1]);
}

/** The default of a root runner: a uid of its own from the default range, gid the same, HOME its job directory. */
function assertRanAsOwnUid(output: string): void {
  const [, uid, gid, groups] = /^uid=(\d+) gid=(\d+) groups=(\S+)$/m.exec(output) ?? [];
  assert.ok(Number(uid) >= DEFAULT_JOB_UIDS.first && Number(uid) <= DEFAULT_JOB_UIDS.last, `a uid of its own (${uid})`);
  assert.deepEqual([gid, groups], [uid, uid], 'its gid is the same number, and it has no other group');
  const dir = /^jobdir (.*)$/m.exec(output)?.[1];
  assert.match(output, new RegExp(`^login HOME=${dir} USER=drover-${uid} LOGNAME=drover-${uid}$`, 'm'), 'HOME is its job directory');
}

function assertRanAsNobody(output: string): void {
  assert.match(output, new RegExp(`^uid=${NOBODY.uid}\\(nobody\\) gid=${NOBODY.gid}\\(`, 'm'));
  assert.match(output, new RegExp(`^login HOME=${NOBODY.home} USER=nobody LOGNAME=nobody$`, 'm'), "HOME, USER and LOGNAME are nobody's");
}

function assertDenied(output: string, pid: number, whose: string): void {
  for (const what of ['environ', 'maps', 'mem']) assert.match(probe(output, what, pid), /Permission denied/, `${whose} ${what} is out of reach`);
}

test('a job cannot reach the secrets of its runner, its spawner helper or the other services', async (t) => {
  const s = await startSecretStack(t);
  const jobEnv = (runner: ChildProcess): Record<string, string> => ({ RUNNER_PID: String(runner.pid), SECRET_FILES: s.secretFiles.join(' ') });
  const [helperRunner, fallbackRunner, sharedRunner, rootRunner] = await Promise.all([
    startRunner(t, s, 'iso-helper', { RUNNER_EXECUTOR: 'spawner' }),
    // The child_process executor, also what a runner uses while its helper is down; its secret comes from a file.
    startRunner(t, s, 'iso-fallback', { RUNNER_EXECUTOR: 'child_process', DROVER_CALLBACK_SECRET: '', DROVER_CALLBACK_SECRET_FILE: s.secretFiles[0]! }),
    startRunner(t, s, 'iso-shared', { RUNNER_EXECUTOR: 'spawner', RUNNER_JOB_USER: 'nobody' }),
    startRunner(t, s, 'iso-root', { RUNNER_EXECUTOR: 'spawner', RUNNER_JOB_USER: 'root' }),
  ]);

  await t.test('root runner, spawner helper: the job runs as a uid of its own and finds no secret', async () => {
    const { job, output } = await s.run('iso-helper', jobEnv(helperRunner));
    assertSweepWorked(output, job, helperRunner.pid!);
    assertRanAsOwnUid(output);
    const spawner = parentOf(output);
    assert.equal(basename(readlinkSync(`/proc/${spawner}/exe`)), basename(DEFAULT_SPAWNER_PATH), "the job's parent is the spawner helper");
    assert.match(readFileSync(`/proc/${spawner}/status`, 'utf8'), new RegExp(`^PPid:\\s+${helperRunner.pid}$`, 'm'), 'of this runner');
    assert.equal(readFileSync(`/proc/${spawner}/environ`, 'utf8'), '', 'the spawner helper has an empty environment');
    assertDenied(output, spawner, 'the spawner');
    assertDenied(output, helperRunner.pid!, 'the runner');
    for (const file of s.secretFiles) assert.match(output, new RegExp(`^read file ${file}: .*Permission denied`, 'm'));
    assert.deepEqual(leaked(s, output), []);
  });

  await t.test('root runner, child_process executor: the job runs as a uid of its own and finds no secret', async () => {
    const { job, output } = await s.run('iso-fallback', jobEnv(fallbackRunner));
    assertSweepWorked(output, job, fallbackRunner.pid!);
    assertRanAsOwnUid(output);
    assert.equal(parentOf(output), fallbackRunner.pid, 'started by the runner itself');
    assertDenied(output, fallbackRunner.pid!, 'the runner');
    for (const file of s.secretFiles) assert.match(output, new RegExp(`^read file ${file}: .*Permission denied`, 'm'));
    assert.deepEqual(leaked(s, output), []);
  });

  await t.test('root runner, RUNNER_JOB_USER=nobody (one user for all jobs): the job runs as nobody and finds no secret', async () => {
    const { job, output } = await s.run('iso-shared', jobEnv(sharedRunner));
    assertSweepWorked(output, job, sharedRunner.pid!);
    assertRanAsNobody(output);
    assertDenied(output, parentOf(output), 'the spawner');
    assertDenied(output, sharedRunner.pid!, 'the runner');
    for (const file of s.secretFiles) assert.match(output, new RegExp(`^read file ${file}: .*Permission denied`, 'm'));
    assert.deepEqual(leaked(s, output), []);
  });

  await t.test('RUNNER_JOB_USER=root opts in to root jobs, and then the same sweep does find the secrets', async () => {
    const { job, output } = await s.run('iso-root', jobEnv(rootRunner));
    assertSweepWorked(output, job, rootRunner.pid!);
    assert.match(output, /^uid=0\(root\) gid=0\(root\)/m);
    const spawner = parentOf(output);
    assert.match(probe(output, 'environ', spawner), /: {2}rc=0$/, "the spawner's environment: readable by root, and empty");
    assert.match(probe(output, 'mem', spawner), /1\+0 records in/, "root reads the spawner's memory");
    assert.deepEqual(leaked(s, output).sort(), ['adminToken', 'callbackSecret', 'callbackSecretFromFile', 'redisPassword'], 'the sweep finds every secret it can reach');
  });
});

test("a runner that cannot switch users warns at start; even so, a job of the same uid cannot read the spawner's environment or memory", async (t) => {
  const s = await startSecretStack(t);
  const workDir = mkdtempSync(join(tmpdir(), 'drover-isolation-work-'));
  t.after(() => rmSync(workDir, { recursive: true, force: true }));
  chownSync(workDir, NOBODY.uid, NOBODY.gid);
  // The runner as nobody, with its secrets in its environment only (nobody cannot read the root-owned files).
  const env = {
    PATH: process.env.PATH, REDIS_URL: s.redisUrl, AMQP_URL, DROVER_PREFIX: s.prefix, DROVER_CALLBACK_SECRET: s.secrets.callbackSecret,
    DROVER_LOG_LEVEL: 'info', DROVER_METRICS_PORT: '0', RUNNER_QUEUES: 'iso-same-uid', RUNNER_EXECUTOR: 'spawner', RUNNER_WORK_DIR: workDir,
  };
  const runner = spawnDrover(t, ['runner'], env, ['ignore', 'pipe', 'inherit'], { uid: NOBODY.uid, gid: NOBODY.gid });
  let log = '';
  runner.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  await until('the runner as nobody', () => log.includes('"msg":"runner started"') || runner.exitCode !== null, 60_000);
  assert.equal(runner.exitCode, null, log);
  assert.match(log, /"level":40,.*jobs run as this runner's own user \(uid \d+\), so a job can read the runner's environment.*RUNNER_JOB_USER/);

  const { job, output } = await s.run('iso-same-uid', { RUNNER_PID: String(runner.pid), SECRET_FILES: '' });
  assertSweepWorked(output, job, runner.pid!);
  assert.match(output, new RegExp(`^uid=${NOBODY.uid}\\(nobody\\)`, 'm'));
  const spawner = parentOf(output);
  assert.equal(basename(readlinkSync(`/proc/${spawner}/exe`)), basename(DEFAULT_SPAWNER_PATH));
  assertDenied(output, spawner, 'the spawner (non-dumpable)');
  assert.match(probe(output, 'maps', runner.pid), /^read maps \d+: [0-9a-f]+-/, 'the runner itself is readable by its own uid: the warning is true');
});

test('RUNNER_JOB_USER naming an unknown user: the runner refuses to start, naming the variable', async (t) => {
  let stderr = '';
  const child = spawnDrover(t, ['runner'], { PATH: process.env.PATH, RUNNER_JOB_USER: 'no-such-user-x' }, ['ignore', 'ignore', 'pipe']);
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 2, stderr);
  assert.match(stderr, /RUNNER_JOB_USER names "no-such-user-x", but \/etc\/passwd has no such user/);
});
