import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { audit, markerDir } from '../helpers/audit.js';
import { jobTempDir } from '../helpers/job-dir.js';
import { startServiceReady } from '../helpers/processes.js';
import { alive, startStack } from '../helpers/stack.js';
import { until } from '../helpers/until.js';

/** kill -9 of a runner, of its spawner helper, or of both at once, under jobs that leave processes behind. */
type Victim = 'runner' | 'spawner' | 'both';

const JOBS = 3;

/**
 * Each attempt records the pids of three processes it leaves behind (setsid, double fork, both) in
 * `<dir>/<job>.<attempt>.pids`, then its first attempt sleeps until killed; a retry ends at once.
 */
function command(marker: string, dir: string): string {
  return [
    marker,
    `P="${dir}/$DROVER_JOB_ID.$DROVER_ATTEMPT.pids"`,
    'setsid sleep 300 & echo $! >> "$P"',
    '( sleep 301 & echo $! >> "$P" )',
    `setsid sh -c 'sleep 302 & echo $! >> "$0"' "$P" &`,
    'while [ "$(wc -l < "$P")" -lt 3 ]; do sleep 0.02; done',
    '[ "$DROVER_ATTEMPT" -gt 1 ] || sleep 60',
  ].join('\n');
}

const firstAttemptPids = (dir: string): number[] =>
  readdirSync(dir).filter((f) => f.endsWith('.1.pids')).flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n').filter(Boolean).map(Number));

/** The drover-spawner process whose parent is `parent`: a runner's helper, or a helper's guard. */
function spawnerChildOf(parent: number): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [name, rest] = [stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), stat.slice(stat.lastIndexOf(')') + 2).split(' ')];
      if (name === 'drover-spawner' && Number(rest[1]) === parent) return Number(entry);
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`process ${parent} has no drover-spawner child`);
}

const spawnerOf = (runner: ChildProcess): number => spawnerChildOf(runner.pid!);

const kill9 = (pid: number): void => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
};

const MODES: { mode: string; env: Record<string, string> }[] = [
  // Jobs as root: only the cgroup holds each job's processes together.
  { mode: 'cgroup', env: { RUNNER_CGROUP: 'auto', RUNNER_JOB_USER: 'root' } },
  // No cgroup: process groups, the spawner as subreaper, a uid per job, and the guard.
  { mode: 'subreaper+uid', env: { RUNNER_CGROUP: 'off' } },
];

for (const { mode, env } of MODES) {
  for (const victim of ['runner', 'spawner', 'both'] as Victim[]) {
    test(`kill -9 of the ${victim === 'both' ? 'runner and its spawner together' : victim} [${mode}]: no process of a job outlives it, the retry runs alone`, async (t) => {
      const s = await startStack(t, { runner: false });
      const { dir: markers, command: marker } = markerDir(t);
      const dir = jobTempDir(t);
      const runnerEnv = { ...env, RUNNER_EXECUTOR: 'spawner', RUNNER_LEASE_MS: '2000', RUNNER_CONCURRENCY: '4', DROVER_KILL_GRACE_MS: '300' };
      const first = await startServiceReady(t, 'runner', s.prefix, { ...runnerEnv, RUNNER_ID: `contain-${victim}-a` });
      const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', {
        jobs: Array.from({ length: JOBS }, () => ({ command: command(marker(), dir), retries: 2 })),
      });
      assert.equal(res.status, 201);
      const ids = res.body.jobs.map((j) => j.id);
      const pids = await until('every first attempt left its processes', () => {
        const p = firstAttemptPids(dir);
        return p.length === JOBS * 3 ? p : undefined;
      }, 20_000);
      const spawner = spawnerOf(first);
      if (victim !== 'runner') kill9(spawner);
      if (victim !== 'spawner') kill9(first.pid!);
      if (victim !== 'spawner') await once(first, 'exit').catch(() => undefined);

      // Before any other runner starts (whose start-up sweep would clear leftovers): nothing may be left.
      await until('the killed jobs\' processes are gone', () => pids.every((p) => !alive(p)) || undefined, 5000).catch(() => undefined);
      const left = pids.filter(alive);
      left.forEach(kill9);
      assert.deepEqual(left, [], `processes of the killed attempts still running after kill -9 of the ${victim}`);

      // The retries run on a runner that is alive: the same one when only its spawner died.
      if (victim !== 'spawner') await startServiceReady(t, 'runner', s.prefix, { ...runnerEnv, RUNNER_ID: `contain-${victim}-b` });
      const a = await audit(s, `kill -9 ${victim} under jobs that setsid/double-fork [${mode}]`, ids, markers, 60_000);
      assert.deepEqual(a.notEnded, []);
      assert.equal(a.succeeded, JOBS);
      assert.equal(a.duplicated, 0);
      assert.equal(a.missing, 0);
      assert.ok(a.lost >= JOBS, 'each killed attempt is recorded lost');
      // The retries' own leftovers died with them too.
      const retries = readdirSync(dir).filter((f) => !f.endsWith('.1.pids')).flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n').filter(Boolean).map(Number));
      await until('the retries\' processes are gone', () => retries.every((p) => !alive(p)) || undefined, 5000).catch(() => undefined);
      assert.deepEqual(retries.filter(alive), []);
      assert.ok(existsSync(dir));
    });
  }
}

for (const { mode, env } of MODES) {
  test(`a runner killed with its spawner and the spawner's guard [${mode}]: the next runner of the host kills what its jobs left`, async (t) => {
    const s = await startStack(t, { runner: false });
    const { command: marker } = markerDir(t);
    const dir = jobTempDir(t);
    const runnerEnv = { ...env, RUNNER_EXECUTOR: 'spawner', RUNNER_LEASE_MS: '2000' };
    const first = await startServiceReady(t, 'runner', s.prefix, { ...runnerEnv, RUNNER_ID: 'sweep-a' });
    const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: [{ command: command(marker(), dir), retries: 2 }] });
    assert.equal(res.status, 201);
    const pids = await until('the attempt left its processes', () => (firstAttemptPids(dir).length === 3 ? firstAttemptPids(dir) : undefined), 20_000);
    const spawner = spawnerOf(first);
    const guard = spawnerChildOf(spawner);
    // All three at once: nothing of the dead runner is left to clean up.
    [guard, spawner, first.pid!].forEach(kill9);
    await once(first, 'exit').catch(() => undefined);
    try {
      await until('the attempt\'s leftovers are gone', () => pids.every((p) => !alive(p)) || undefined, 1500);
    } catch {
      // expected: with the guard gone too, only the next runner of the host can clear them
    }
    const leftBefore = pids.filter(alive);
    await startServiceReady(t, 'runner', s.prefix, { ...runnerEnv, RUNNER_ID: 'sweep-b' });
    await until('the new runner cleared them', () => pids.every((p) => !alive(p)) || undefined, 5000).catch(() => undefined);
    const left = pids.filter(alive);
    left.forEach(kill9);
    assert.deepEqual(left, [], 'the next runner killed the leftovers');
    // The control: they really were left running until then (the main process dies by its parent-death signal).
    assert.ok(leftBefore.length >= 2, `leftovers ran until the next runner started (${leftBefore.length})`);
    await s.waitFor(res.body.jobs[0]!.id, undefined, 30_000);
  });
}
