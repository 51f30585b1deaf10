import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { isTerminal, type JobRecord } from '@drover/core';
import { DEFAULT_JOB_UIDS } from '@drover/runner';
import { freePort, startService, startServiceReady } from './helpers/processes.js';
import { alive, testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

/*
 * The promise: a job cannot reach another job running beside it on the same runner, whatever their queues: not
 * its environment, not the files in its job directory, not its processes. A token restricted to `ci` thereby sees
 * nothing of `default`, even through a job. Separate processes as in production: API, scheduler, one runner
 * serving both queues. A job of `default` holds recognisable secrets (in its environment and in a file it ships);
 * a job of `ci`, submitted with a token restricted to `ci`, sweeps every /proc/<pid>/environ, tries the other
 * job's directory and kills its pid. The control runner shares one user among its jobs (RUNNER_JOB_USER=nobody):
 * there the same attack does find the secrets and kill the job, so finding nothing means something.
 */

const hex = (n: number): string => randomBytes(n).toString('hex');

/** A failed fetch's message with its cause (undici's "fetch failed" alone says nothing). */
function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return `${e.message}${e.cause ? ` (${e.cause.code ?? ''} ${e.cause.message ?? ''})` : ''}`;
}

/** What a job of `ci` does to the job of `default` whose pid and directory it was told. */
const ATTACK = String.raw`
echo "ids $(id -u) $(id -g)"
echo "self-environ $(tr '\0' ' ' < /proc/$$/environ)"
for d in /proc/[0-9]*; do
  if e=$(tr '\0' ' ' 2>/dev/null < $d/environ); then echo "environ $(basename $d): $e"; fi
done
echo "victim cmdline: $(tr '\0' ' ' < /proc/$VICTIM_PID/cmdline)"
echo "victim environ: $(cat /proc/$VICTIM_PID/environ 2>&1 | tr '\0' ' ')"
echo "victim dir: $(ls -a $VICTIM_DIR 2>&1 | tr '\n' ' ')"
echo "victim file: $(cat $VICTIM_DIR/secret.txt 2>&1)"
k=$(kill -KILL $VICTIM_PID 2>&1); echo "victim kill: $k rc=$?"
exit 0
`;

interface Deployment {
  prefix: string;
  /** An HTTP call with the unrestricted admin token, or with the token restricted to queue ci. */
  call<T>(as: 'admin' | 'ci', method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

async function deploy(t: TestContext): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-separation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokens = { admin: `admin-${hex(16)}`, ci: `ci-${hex(16)}` };
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(tokensFile, JSON.stringify({ tokens: [
    { name: 'admin', token: tokens.admin, scope: 'admin' },
    { name: 'ci', token: tokens.ci, scope: 'submit', queues: ['ci'] },
  ] }), { mode: 0o600 });
  const prefix = testPrefix();
  const port = await freePort();
  startService(t, 'api', prefix, { DROVER_PORT: String(port), DROVER_TOKENS_FILE: tokensFile, DROVER_RATE_LIMIT: '0' });
  await startServiceReady(t, 'scheduler', prefix);
  const url = `http://127.0.0.1:${port}`;
  await until('the API', () => fetch(`${url}/healthz`).then((r) => r.ok, () => false));
  return {
    prefix,
    call: async <T>(as: 'admin' | 'ci', method: string, path: string, body?: unknown) => {
      const send = (): Promise<Response> => fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${tokens[as]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      // A read whose connection failed before any answer is sent once more (a loaded CI machine once reset one);
      // a write is not, and every failure names the request and its cause.
      const res = await send().catch((err: unknown) => {
        if (method !== 'GET') throw err;
        process.stderr.write(`# ${method} ${path}: ${describe(err)}; sent again\n`);
        return send();
      }).catch((err: unknown) => {
        throw new Error(`${method} ${path}: ${describe(err)}`, { cause: err });
      });
      return { status: res.status, body: (await res.json()) as T };
    },
  };
}

async function output(d: Deployment, id: string): Promise<string> {
  const lines: string[] = [];
  for (let cursor: string | null = null; ;) {
    type Page = { items: { line: string }[]; nextCursor: string | null; done: boolean };
    const page: { body: Page } = await d.call<Page>(
      'admin', 'GET', `/v1/jobs/${id}/logs?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
    );
    lines.push(...page.body.items.map((i) => i.line));
    // A running job's log has a cursor to follow: what is there now is enough.
    if (page.body.done || page.body.nextCursor === null || page.body.items.length === 0) break;
    cursor = page.body.nextCursor;
  }
  return lines.join('\n');
}

const ended = (d: Deployment, id: string): Promise<JobRecord> =>
  until(`job ${id} to end`, async () => {
    const j = (await d.call<JobRecord>('admin', 'GET', `/v1/jobs/${id}`)).body;
    return isTerminal(j.status) && j;
  }, 60_000);

interface Attack {
  victim: { id: string; pid: number; dir: string; uid: number };
  secrets: { env: string; file: string };
  attacker: JobRecord;
  out: string;
  /** What became of the victim: cancelled by the test afterwards, unless the attack had already killed it. */
  victimEnd: JobRecord;
}

/** One runner serving ci and default; a job of default with secrets; a job of ci that goes after it. */
async function attack(t: TestContext, d: Deployment, runnerEnv: Record<string, string>): Promise<Attack> {
  const runner: ChildProcess = await startServiceReady(t, 'runner', d.prefix, {
    RUNNER_QUEUES: 'ci,default', RUNNER_CONCURRENCY: '2', RUNNER_ID: `sep-${hex(3)}`, RUNNER_OUTPUT_CAP: String(64 * 1024 * 1024),
    DROVER_KILL_GRACE_MS: '200', ...runnerEnv,
  });
  const secrets = { env: `envsecret${hex(16)}`, file: `filesecret${hex(16)}` };
  const submitted = await d.call<JobRecord>('admin', 'POST', '/v1/jobs', {
    queue: 'default', command: 'echo "victim $$ $DROVER_JOB_DIR"; while :; do sleep 0.1; done', env: { DEPLOY_KEY: secrets.env },
    files: { 'secret.txt': `${secrets.file}\n` }, timeoutMs: 120_000,
  });
  assert.equal(submitted.status, 201);
  const line = await until('the job of default to run', async () => /^victim (\d+) (\S+)$/m.exec(await output(d, submitted.body.id)), 30_000);
  const [pid, dir] = [Number(line[1]), line[2]!];
  const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

  // The ci token cannot touch the job of default through the API ...
  assert.equal((await d.call('ci', 'GET', `/v1/jobs/${submitted.body.id}`)).status, 404);
  // ... so it tries from inside a job of its own queue, told where to look.
  const sent = await d.call<JobRecord>('ci', 'POST', '/v1/jobs', { queue: 'ci', command: ATTACK, env: { VICTIM_PID: String(pid), VICTIM_DIR: dir }, timeoutMs: 60_000 });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  const attacker = await ended(d, sent.body.id);
  const out = await output(d, attacker.id);
  // Cancelled by the test unless the attack killed it (then its own end is recorded, not raced by a cancel).
  if (!/^victim kill: .* rc=0$/m.test(out)) {
    assert.equal((await d.call<JobRecord>('admin', 'POST', `/v1/jobs/${submitted.body.id}/cancel`)).status, 200);
  }
  const victimEnd = await ended(d, submitted.body.id);
  runner.kill('SIGTERM');
  await once(runner, 'exit');
  return { victim: { id: submitted.body.id, pid, dir, uid }, secrets, attacker, out, victimEnd };
}

function assertAttackRan(a: Attack): void {
  assert.equal(a.attacker.status, 'succeeded', a.attacker.error ?? '');
  assert.equal(a.attacker.truncated, false, 'the whole sweep was stored');
  assert.match(a.out, new RegExp(`^self-environ .*DROVER_JOB_ID=${a.attacker.id}`, 'm'), 'the sweep reads environ files: its own');
  assert.match(a.out, /^victim cmdline: \/bin\/sh -c echo "victim \$\$/m, 'it sees the other job\'s process');
}

test("a job of one queue cannot read, list or signal a job of another queue running beside it on the same runner", async (t) => {
  const d = await deploy(t);

  for (const executor of ['spawner', 'child_process']) {
    await t.test(`each job a uid of its own (the default), ${executor} executor: nothing leaks, the other job lives on`, async (st) => {
      const a = await attack(st, d, { RUNNER_EXECUTOR: executor });
      assertAttackRan(a);
      const [, uid, gid] = /^ids (\d+) (\d+)$/m.exec(a.out) ?? [];
      assert.ok(Number(uid) >= DEFAULT_JOB_UIDS.first && Number(uid) <= DEFAULT_JOB_UIDS.last, `the attacker ran as a job uid (${uid})`);
      assert.equal(gid, uid);
      assert.ok(a.victim.uid >= DEFAULT_JOB_UIDS.first && a.victim.uid <= DEFAULT_JOB_UIDS.last && a.victim.uid !== Number(uid), 'the two jobs ran as different uids');
      assert.ok(!a.out.includes(a.secrets.env), "the other job's environment did not leak");
      assert.ok(!a.out.includes(a.secrets.file), "the other job's file did not leak");
      assert.doesNotMatch(a.out, new RegExp(`^environ ${a.victim.pid}:`, 'm'));
      assert.match(a.out, /^victim environ: .*Permission denied/m);
      assert.match(a.out, /^victim dir: .*Permission denied/m);
      assert.match(a.out, /^victim file: .*Permission denied/m);
      assert.match(a.out, /^victim kill: .*Operation not permitted rc=[1-9]/m);
      assert.equal(a.victimEnd.status, 'cancelled', 'the other job ran on until the test cancelled it');
      assert.equal(alive(a.victim.pid), false);
    });
  }

  await t.test('control, one user for all jobs (RUNNER_JOB_USER=nobody): the same attack reads the secrets and kills the other job', async (st) => {
    const a = await attack(st, d, { RUNNER_EXECUTOR: 'spawner', RUNNER_JOB_USER: 'nobody' });
    assertAttackRan(a);
    assert.match(a.out, new RegExp(`^environ ${a.victim.pid}: .*DEPLOY_KEY=${a.secrets.env}`, 'm'), "the sweep finds the other job's environment");
    assert.match(a.out, new RegExp(`^victim file: ${a.secrets.file}$`, 'm'), "and reads the file in the other job's directory");
    assert.match(a.out, /^victim kill: {2}rc=0$/m);
    assert.equal(a.victimEnd.status, 'failed');
    assert.equal(a.victimEnd.signal, 'SIGKILL', 'the other job was killed by the attack');
  });
});
