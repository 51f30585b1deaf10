import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test, type TestContext } from 'node:test';
import { tempHome } from './helpers/cli.js';
import { ROOT } from './helpers/deploy.js';
import { startStack } from './helpers/stack.js';

const DOC = readFileSync(join(ROOT, 'docs/cli.md'), 'utf8');

/** The ```sh blocks of docs/cli.md that a `<!-- tested: ... -->` comment marks, by the words of the comment. */
function testedBlock(words: string): string {
  const re = /<!-- tested: ([^>]*?) -->\n```sh\n([\s\S]*?)```/g;
  for (const m of DOC.matchAll(re)) if (m[1]!.includes(words)) return m[2]!;
  throw new Error(`docs/cli.md has no block marked "${words}"`);
}

/** Runs a doc block as written, with `sh -e`, from the checkout; no network for npm (a missing link must not fetch). */
function sh(t: TestContext, script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('sh', ['-e', '-c', script], { cwd: ROOT, env: { NO_COLOR: '1', npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((res, rej) => {
    child.once('error', rej);
    child.once('close', (code) => res({ code, stdout, stderr }));
  });
}

/** `npx drover` resolves to this checkout's CLI (the workspace's bin link), compiled from the current sources. */
async function buildCli(t: TestContext): Promise<void> {
  const link = join(ROOT, 'node_modules/.bin/drover');
  assert.ok(existsSync(link), 'node_modules/.bin/drover is missing: npm ci links it (the cli package\'s bin)');
  assert.ok(realpathSync(link).startsWith(resolve(ROOT, 'cli')), `npx drover would not run this checkout's CLI: ${realpathSync(link)}`);
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const built = await sh(t, `"${process.execPath}" "${tsc}" -b cli`, { PATH: process.env.PATH ?? '' });
  // Others' type errors do not stop the emit; only a missing main.js does.
  assert.ok(existsSync(join(ROOT, 'cli/dist/main.js')), `the CLI did not build:\n${built.stdout}${built.stderr}`);
}

test('docs/cli.md: the tour runs as written against a stack that serves every queue', async (t) => {
  await buildCli(t);
  const s = await startStack(t, { env: { RUNNER_QUEUES: '*' } });
  const env = { PATH: process.env.PATH ?? '', HOME: tempHome(t), DROVER_URL: s.url, DROVER_TOKEN: s.tokens.admin };
  const tour = testedBlock('runs this block');
  assert.ok(tour.split('\n').filter((l) => l.includes('npx drover')).length >= 8, 'the tour is what is run');
  const r = await sh(t, tour, env);
  assert.equal(r.code, 0, `the tour stopped:\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const out = r.stdout.split('\n');
  for (const line of ['hello', 'hi', 'there', 'a', 'b', 'report', 'later']) assert.ok(out.includes(line), `"${line}" in\n${r.stdout}`);
  assert.ok(r.stdout.indexOf('a\nb\n') >= 0, 'sort got its stdin');
  assert.match(r.stdout, /^builds +active( +\S+){9} +1$/m, 'queues ls shows the runner that serves builds');
  // The control: the same kind of line fails when the command fails, so a passing tour means each line worked.
  const failing = await sh(t, 'npx drover run -- sh -c "exit 3"\necho not reached', env);
  assert.equal(failing.code, 3);
  assert.equal(failing.stdout.includes('not reached'), false);
});

test('docs/cli.md: npm install -g ./cli puts drover on PATH (into a prefix of its own)', async (t) => {
  await buildCli(t);
  const prefix = mkdtempSync(join(tmpdir(), 'drover-global-'));
  t.after(() => rmSync(prefix, { recursive: true, force: true }));
  const env = { PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, HOME: tempHome(t), npm_config_prefix: prefix };
  const r = await sh(t, testedBlock('installs it'), env);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^usage: drover <command> \[options\]$/m);
  assert.ok(realpathSync(join(prefix, 'bin/drover')).startsWith(resolve(ROOT, 'cli')), 'a link to this checkout, nothing downloaded');
});
