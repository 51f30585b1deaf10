import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { cliEnv } from './helpers/cli.js';
import { spawnDrover } from './helpers/processes.js';
import { startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Run {
  child: ChildProcess;
  stdout(): Buffer;
  stderr(): string;
  done: Promise<{ code: number | null; stdout: Buffer; stderr: string }>;
}

/** `drover run <args>` as a real process, `input` written to its stdin (a pipe) and closed; or stdin /dev/null. */
function runCli(t: TestContext, env: Record<string, string>, args: string[], input?: Buffer | string): Run {
  const child = spawnDrover(t, ['run', ...args], env, [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']);
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  if (input !== undefined) child.stdin!.end(input);
  const done = new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
  return { child, stdout: () => Buffer.concat(out), stderr: () => err, done };
}

test('drover run: stdin from a pipe reaches the job, output comes back byte for byte (no newline added), -n sends none', async (t) => {
  const s = await startStack(t, { env: { DROVER_MAX_FILES_BYTES: '300000' } });
  const env = cliEnv(t, s.url, s.tokens.submit);
  const long = 'x'.repeat(200 * 1024); // longer than a stored log line: kept in pieces, printed whole
  const [cat, noNewline, both, longLine, none, counted] = await Promise.all([
    runCli(t, env, ['--', 'cat'], 'a\nb').done,
    runCli(t, env, ['--', 'printf %s last']).done,
    runCli(t, env, ['--', 'printf out; printf err >&2']).done,
    runCli(t, env, ['--', 'cat'], long).done,
    runCli(t, env, ['-n', '--', 'cat'], 'not sent').done,
    runCli(t, env, ['--', 'wc', '-c'], Buffer.from([0, 1, 2, 255, 10])).done,
  ]);
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout.toString(), 'a\nb', 'stdin forwarded; its missing last newline is not added');
  assert.equal(noNewline.stdout.toString(), 'last');
  assert.equal(both.stdout.toString(), 'out');
  assert.equal(both.stderr, 'err');
  assert.equal(longLine.stdout.length, long.length);
  assert.ok(longLine.stdout.toString() === long, 'a 200 KiB line without newline, unchanged');
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout.length, 0, 'with -n the job reads /dev/null');
  assert.equal(counted.stdout.toString().trim(), '5', 'any bytes (base64 on the way)');

  // The record keeps the stdin with the spec; over DROVER_MAX_FILES_BYTES it is a 400 that stores nothing.
  const big = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', { command: 'cat', stdin: 'y'.repeat(400_000) });
  assert.equal(big.status, 400);
  assert.match(big.body.error.message, /^stdin: holds 400000 bytes with the files; the limit is 300000 \(DROVER_MAX_FILES_BYTES\)$/);
});

test('drover run: Ctrl-C cancels and keeps streaming until the job has stopped; a second Ctrl-C stops waiting', async (t) => {
  // A long kill grace: the job's own reaction to SIGTERM decides when it ends.
  const s = await startStack(t, { env: { DROVER_KILL_GRACE_MS: '10000' } });
  const env = cliEnv(t, s.url, s.tokens.submit);
  const job = (reaction: string): string => `trap 'echo got TERM; ${reaction}; echo bye; exit 3' TERM; echo started; while :; do sleep 0.05; done`;

  const patient = runCli(t, env, ['--', job('sleep 0.5')]);
  await until('the job started', () => patient.stdout().toString().includes('started\n'));
  patient.child.kill('SIGINT');
  const ended = await patient.done;
  assert.equal(ended.stdout.toString(), 'started\ngot TERM\nbye\n', 'what the job printed after SIGTERM is shown');
  assert.match(ended.stderr, /^drover: cancelling job \w+; its output follows until it has stopped/m);
  assert.match(ended.stderr, /^drover: job \w+ was cancelled$/m);
  assert.equal(ended.code, 130);

  const impatient = runCli(t, env, ['--', job('sleep 3')]);
  await until('the job started', () => impatient.stdout().toString().includes('started\n'));
  impatient.child.kill('SIGINT');
  await until('the cancel was asked for', () => impatient.stderr().includes('drover: cancelling job'));
  await until('the job saw SIGTERM', () => impatient.stdout().toString().includes('got TERM'));
  impatient.child.kill('SIGINT');
  const left = await impatient.done;
  assert.equal(left.code, 130);
  assert.match(left.stderr, /^drover: stopped waiting; job (\w+) is being cancelled/m);
  const id = /stopped waiting; job (\w+)/.exec(left.stderr)![1]!;
  assert.equal(left.stdout.toString().includes('bye'), false, 'left before the job ended');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body.status, 'running', 'the job was still stopping');
  const final = await s.waitFor(id);
  assert.equal(final.status, 'cancelled');
});

test('drover run on a queue no runner serves says so, and the job runs once a runner serves it', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, s.url, s.tokens.submit);
  const waiting = runCli(t, env, ['-q', 'builds', '--', 'echo', 'built']);
  await until('the warning', () => waiting.stderr().includes('no runner serves queue builds'));
  assert.match(waiting.stderr(), /^drover: warning: no runner serves queue builds: the job waits until a runner with this queue in RUNNER_QUEUES starts/m);
  const { Runner } = await import('@drover/runner');
  const { createLogger } = await import('@drover/core');
  const runner = new Runner({ config: { ...s.config, runner: { ...s.config.runner, id: `builds-${s.prefix.slice(5, 13)}`, queues: ['builds'] } }, logger: createLogger('silent', 'test') });
  t.after(() => runner.close());
  await runner.start();
  const done = await waiting.done;
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout.toString(), 'built\n');
  await runner.close();
});
