import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { createLogger } from '@drover/core';
import { DEFAULT_SPAWNER_PATH, SpawnerExecutor, type Executor } from '@drover/runner';
import { EXECUTORS } from './helpers/executors.js';
import { alive } from './helpers/stack.js';

const log = createLogger('silent', 'test');
const BASE_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin' };

interface Ran {
  exitCode: number | null;
  signal: string | null;
  error?: string;
  stdout: string;
  stderr: string;
  pid: number | undefined;
}

async function run(ex: Executor, argv: string[], opts: { env?: Record<string, string>; cwd?: string; after?: (pid: number | undefined) => void } = {}): Promise<Ran> {
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const proc = await ex.start({ argv, env: { ...BASE_ENV, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) }, (s, c) => out[s].push(Buffer.from(c)));
  opts.after?.(proc.pid);
  const exit = await proc.exited;
  return { ...exit, stdout: Buffer.concat(out.stdout).toString(), stderr: Buffer.concat(out.stderr).toString(), pid: proc.pid };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'drover-exec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function waitGone(pids: number[]): Promise<number[]> {
  for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
  return pids.filter(alive);
}


for (const [name, make] of EXECUTORS) {
  describe(`executor contract: ${name}`, () => {
    test('exit codes, signals, separate stdout/stderr, exact environment, cwd', async (t) => {
      const ex = await make();
      t.after(() => ex.close());
      const dir = tempDir(t);
      const a = await run(ex, ['/bin/sh', '-c', 'echo out; echo err >&2; exit 42']);
      assert.deepEqual([a.exitCode, a.signal, a.stdout, a.stderr], [42, null, 'out\n', 'err\n']);
      const b = await run(ex, ['/bin/sh', '-c', 'kill -TERM $$']);
      assert.deepEqual([b.exitCode, b.signal], [null, 'SIGTERM']);
      const c = await run(ex, ['env'], { env: { ONLY: 'this' }, cwd: dir });
      assert.deepEqual(c.stdout.trim().split('\n').sort(), ['ONLY=this', `PATH=${BASE_ENV.PATH}`]);
      const d = await run(ex, ['pwd'], { cwd: dir });
      assert.equal(d.stdout.trim(), dir);
      const e = await run(ex, ['sh', '-c', 'read x; echo "stdin:[$x]"']);
      assert.equal(e.stdout, 'stdin:[]\n', 'stdin is /dev/null');
    });

    test('large output arrives complete and in order', async (t) => {
      const ex = await make();
      t.after(() => ex.close());
      const r = await run(ex, ['/bin/sh', '-c', 'seq 1 200000']);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 200000);
      assert.equal(lines[199999], '200000');
    });

    test('a program that cannot start reports why', async (t) => {
      const ex = await make();
      t.after(() => ex.close());
      const a = await run(ex, ['/nonexistent/program']);
      assert.equal(a.exitCode, null);
      assert.match(a.error ?? '', /ENOENT/);
      const b = await run(ex, ['true'], { cwd: '/nonexistent/dir' });
      assert.match(b.error ?? '', /ENOENT/);
      const c = await run(ex, ['no-such-program-anywhere']);
      assert.match(c.error ?? '', /ENOENT/);
    });

    test('a group signal reaches grandchildren; leftovers die when the command exits', async (t) => {
      const ex = await make();
      t.after(() => ex.close());
      const dir = tempDir(t);
      const pids = join(dir, 'pids');
      const proc = await ex.start({ argv: ['/bin/sh', '-c', `sleep 60 & echo $! >> ${pids}; echo $$ >> ${pids}; wait`], env: BASE_ENV }, () => undefined);
      for (let i = 0; i < 100 && readPids(pids).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      proc.signalGroup('SIGTERM');
      const exit = await proc.exited;
      assert.equal(exit.signal, 'SIGTERM');
      assert.deepEqual(await waitGone(readPids(pids)), []);

      const left = join(dir, 'left');
      const r = await run(ex, ['/bin/sh', '-c', `sleep 60 & echo $! > ${left}; exit 0`]);
      assert.equal(r.exitCode, 0);
      assert.deepEqual(await waitGone(readPids(left)), [], 'a background process does not outlive its job');
    });
  });
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
const readPids = (path: string): number[] => readFileSafe(path).trim().split('\n').filter(Boolean).map(Number);

test('the helper reports resource usage and keeps up with 2000 short commands at concurrency 8', async (t) => {
  const ex = new SpawnerExecutor(DEFAULT_SPAWNER_PATH, log);
  await ex.init();
  t.after(() => ex.close());
  const proc = await ex.start({ argv: ['/bin/sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'], env: BASE_ENV }, () => undefined);
  const exit = await proc.exited;
  assert.ok(exit.usage && exit.usage.userCpuMs + exit.usage.systemCpuMs > 0, JSON.stringify(exit.usage));
  assert.ok(exit.usage.maxRssKb > 0);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next++ < 2000) assert.equal((await run(ex, ['/bin/true'])).exitCode, 0);
  };
  await Promise.all(Array.from({ length: 8 }, worker));
});

test('if the helper dies, its jobs are killed and reported lost, starts wait for the helper, and it comes back', async (t) => {
  const ex = new SpawnerExecutor(DEFAULT_SPAWNER_PATH, log);
  await ex.init();
  t.after(() => ex.close());
  const dir = tempDir(t);
  const pids = join(dir, 'pids');
  const proc = await ex.start({ argv: ['/bin/sh', '-c', `sleep 60 & echo $! >> ${pids}; echo $$ >> ${pids}; wait`], env: BASE_ENV }, () => undefined);
  for (let i = 0; i < 100 && readPids(pids).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  process.kill(ex.helperPid!, 'SIGKILL');
  const exit = await proc.exited;
  assert.equal(exit.lost, true);
  assert.match(exit.error ?? '', /helper died/);
  assert.deepEqual(await waitGone(readPids(pids)), [], 'the job and its grandchild are gone');

  assert.equal(ex.usingHelper, false);
  // Not child_process meanwhile (no cgroup, no subreaper there): the start waits for the restarted helper.
  const back = await run(ex, ['/bin/sh', '-c', 'echo "via $PPID"']);
  assert.ok(ex.usingHelper, 'the helper restarted');
  assert.equal(back.stdout, `via ${ex.helperPid}\n`, 'the command ran under the restarted helper');
});

test('a missing helper binary: the executor starts commands with child_process', async (t) => {
  const ex = new SpawnerExecutor('/nonexistent/drover-spawner', log);
  await ex.init();
  t.after(() => ex.close());
  assert.equal(ex.usingHelper, false);
  const r = await run(ex, ['/bin/sh', '-c', 'echo still works']);
  assert.equal(r.stdout, 'still works\n');
});
