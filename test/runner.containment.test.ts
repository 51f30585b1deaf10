import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DroverMetrics, createLogger, serveMetrics, type JobRecord } from '@drover/core';
import { jobTempDir } from './helpers/job-dir.js';
import { RunnerCgroups } from '@drover/runner';
import { alive, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

/**
 * A job that leaves three processes behind its main one: one in a session of its own (setsid), one orphaned by a
 * double fork, and one both. Each writes its pid to `<dir>/<job id>.pids`; the job goes on once all three did.
 */
function escaping(dir: string, tail: string): string {
  return [
    `P="${dir}/$DROVER_JOB_ID.pids"`,
    'setsid sleep 300 & echo $! >> "$P"',
    '( sleep 301 & echo $! >> "$P" )',
    `setsid sh -c 'sleep 302 & echo $! >> "$0"' "$P" &`,
    'while [ "$(wc -l < "$P")" -lt 3 ]; do sleep 0.02; done',
    tail,
  ].join('\n');
}

const pidsOf = (dir: string, id: string): number[] => {
  const file = join(dir, `${id}.pids`);
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(Number) : [];
};

/** The processes of the job still alive once it ended (given a moment to die). Kills them, so no test leaks them. */
async function survivors(dir: string, id: string): Promise<number[]> {
  const pids = pidsOf(dir, id);
  assert.equal(pids.length, 3, 'the job recorded its three children');
  await until('the job\'s processes are gone', () => pids.every((p) => !alive(p)) || undefined, 3000).catch(() => undefined);
  const left = pids.filter(alive);
  for (const p of left) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return left;
}

const ppidOf = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
};

const comm = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

interface Mode {
  name: string;
  env: Record<string, string>;
  /** What the runner registry says. */
  containment: RegExp;
}

const MODES: Mode[] = [
  // Jobs run as root here: only the cgroup holds them together, not a uid.
  { name: 'cgroup (jobs as root)', env: { RUNNER_CGROUP: 'auto', RUNNER_JOB_USER: 'root' }, containment: /^cgroup/ },
  // No cgroup: the process group, the spawner as subreaper, and the job's own uid.
  { name: 'process group + subreaper + a uid per job', env: { RUNNER_CGROUP: 'off' }, containment: /^process-group\+subreaper$/ },
];

async function stackIn(t: TestContext, mode: Mode): Promise<Stack> {
  const s = await startStack(t, { env: { ...mode.env, RUNNER_EXECUTOR: 'spawner', DROVER_KILL_GRACE_MS: '300' } });
  const runners = await s.request<{ items: { containment: string | null }[] }>('GET', '/v1/runners');
  const shown = runners.body.items[0]?.containment ?? '';
  if (mode.env.RUNNER_CGROUP === 'auto' && !shown.startsWith('cgroup')) t.skip('this host gives the runner no cgroup');
  assert.match(shown, mode.containment, 'the runner registry shows the containment mode');
  return s;
}

for (const mode of MODES) {
  test(`${mode.name}: setsid, double-forked and background processes end with the main process`, async (t) => {
    const s = await stackIn(t, mode);
    const dir = jobTempDir(t);
    const job = await s.run({ command: escaping(dir, 'exit 0') });
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(await survivors(dir, job.id), []);
  });

  test(`${mode.name}: a timeout kills the whole job`, async (t) => {
    const s = await stackIn(t, mode);
    const dir = jobTempDir(t);
    const job = await s.run({ command: escaping(dir, 'sleep 60'), timeoutMs: 1500 });
    assert.equal(job.status, 'timed_out');
    assert.deepEqual(await survivors(dir, job.id), []);
  });

  test(`${mode.name}: cancel kills the whole job; orphans are the spawner's to reap, not PID 1's`, async (t) => {
    const s = await stackIn(t, mode);
    const dir = jobTempDir(t);
    const job = await s.submit({ command: escaping(dir, 'sleep 60') });
    const pids = await until('the job recorded its children', () => (pidsOf(dir, job.id).length === 3 ? pidsOf(dir, job.id) : undefined), 10_000);
    // The double-forked one lost its parent: it was reparented to the spawner (the subreaper), not to PID 1.
    await until('the orphan is reparented', () => ppidOf(pids[1]!) !== 1 || undefined, 2000).catch(() => undefined);
    assert.equal(comm(ppidOf(pids[1]!)), 'drover-spawner');
    const res = await s.request<JobRecord>('POST', `/v1/jobs/${job.id}/cancel`);
    assert.equal(res.status, 200);
    assert.equal((await s.waitFor(job.id)).status, 'cancelled');
    assert.deepEqual(await survivors(dir, job.id), []);
  });
}

// The control: what the checks above catch. With neither a cgroup nor a uid of its own, a process that left the
// job's process group outlives the job (the limit docs/containment.md states for that mode).
test('control: a process group alone does not hold a setsid child (jobs as root, no cgroup)', async (t) => {
  const s = await stackIn(t, { name: 'control', env: { RUNNER_CGROUP: 'off', RUNNER_JOB_USER: 'root' }, containment: /^process-group\+subreaper$/ });
  const dir = jobTempDir(t);
  const job = await s.run({ command: escaping(dir, 'exit 0') });
  assert.equal(job.status, 'succeeded');
  const left = await survivors(dir, job.id);
  assert.ok(left.length >= 1, 'the setsid children outlive the job in this mode');
});

test('the runner\'s /readyz says how its jobs are contained', async (t) => {
  const s = await stackIn(t, MODES[0]!);
  const runner = s.runner!;
  const server = await serveMetrics(new DroverMetrics({ defaultMetrics: false }), { host: '127.0.0.1', port: 0 }, {
    live: () => true, ready: () => runner.state === 'running', details: () => runner.readinessDetails(),
  }, createLogger('silent', 'test'));
  t.after(() => server.close());
  const body = (await (await fetch(`http://127.0.0.1:${server.port}/readyz`)).json()) as { status: string; details: { containment: string; cgroupControllers: Record<string, number | null> } };
  assert.equal(body.status, 'ok');
  assert.match(body.details.containment, /^cgroup/);
  assert.ok(Object.values(body.details.cgroupControllers).some((v) => v !== null), 'the controllers in use are named');
});

test('RUNNER_CGROUP naming a directory that is no cgroup v2 directory is refused, not quietly replaced by another mode', async () => {
  await assert.rejects(RunnerCgroups.open('bad-dir', createLogger('silent', 'test'), '/nonexistent/drover'), /RUNNER_CGROUP=\/nonexistent\/drover is not a cgroup v2 directory/);
});
