import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { record } from '../helpers/audit.js';
import { jobTempDir } from '../helpers/job-dir.js';
import { startServiceReady } from '../helpers/processes.js';
import { REDIS_URL, alive, startStack } from '../helpers/stack.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/until.js';

type Attempts = { attemptHistory: { attempt: number; runnerId: string; status: string; error: string | null }[] };

const LEASE_MS = 3000;

/**
 * Every attempt leaves `start.<attempt>` (its shell's pid and kernel start time, and a timestamp) and, if it runs to
 * the end, `end.<attempt>`. At its start it probes every earlier attempt's process (same pid *and* start time, not a
 * zombie): one still alive is an overlap, written to `overlap.<attempt>`. The probe runs in the job itself, at the
 * moment the retry starts, so it needs no timing on the test's side. The first attempt runs 20 s, a retry 1 s.
 */
const jobCommand = (d: string): string => [
  'a=$DROVER_ATTEMPT',
  `echo "$$ $(cut -d' ' -f22 /proc/$$/stat) $(date +%s%N)" > ${d}/start.$a`,
  `for f in ${d}/start.*; do [ "$f" = ${d}/start.$a ] && continue; read -r p st _ < "$f"; ` +
    `[ "$(cut -d' ' -f22 /proc/$p/stat 2>/dev/null)" = "$st" ] && [ "$(cut -d' ' -f3 /proc/$p/stat)" != Z ] && echo "$f" >> ${d}/overlap.$a; done`,
  'if [ "$a" -ge 2 ]; then sleep 1; else sleep 20; fi',
  `echo "end $(date +%s%N)" > ${d}/end.$a`,
].join('\n');

/** Collects a service process's log (JSON lines on stdout) for the test to search. */
function logOf(child: ChildProcess): { text: () => string } {
  let text = '';
  child.stdout!.on('data', (c: Buffer) => {
    text += c.toString();
    if (text.length > 4_000_000) text = text.slice(-1_000_000);
  });
  return { text: () => text };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

/**
 * One job runs on runner A, whose Redis traffic (store and broker) goes through a proxy; the API, the scheduler
 * and runner B talk to Redis directly. Once the job runs, the proxy blackholes A: its lease can no longer be renewed,
 * the scheduler takes the job for lost after the lease, and B runs it again.
 */
async function partition(t: TestContext, runnerEnv: Record<string, string>) {
  const s = await startStack(t, { runner: false });
  const target = new URL(REDIS_URL);
  const proxy = await startTcpProxy(t, { host: target.hostname, port: Number(target.port || 6379) });
  const dir = jobTempDir(t, 'drover-partition-');
  const env = { RUNNER_LEASE_MS: String(LEASE_MS), RUNNER_CONCURRENCY: '1', ...runnerEnv };
  const a = await startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'part-a', REDIS_URL: proxy.url(REDIS_URL) });
  const aLog = logOf(a);
  let b: ChildProcess | undefined;
  try {
    const job = await s.submit({ command: jobCommand(dir) });
    await s.waitFor(job.id, (j) => j.status === 'running' && j.runnerId === 'part-a');
    await until('the first attempt to start', () => existsSync(join(dir, 'start.1')), 10_000);
    const firstPid = Number(readFileSync(join(dir, 'start.1'), 'utf8').split(' ')[0]);
    b = await startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'part-b' });
    proxy.blackhole();
    const done = await s.waitFor(job.id, undefined, 40_000);
    const overlapped = existsSync(join(dir, 'overlap.2'));
    const firstEnded = existsSync(join(dir, 'end.1'));
    const firstAlive = alive(firstPid);
    // Without a fence the first attempt is still running: it goes now, not with its runner at the end.
    if (firstAlive) process.kill(-firstPid, 'SIGKILL');
    // Back online, runner A reports an outcome the job has left behind: it must change nothing.
    proxy.heal();
    await until('runner A to find its outcome stale', () => aLog.text().includes('outcome not recorded: the job had moved on'), 20_000);
    const after = (await s.request<JobRecord & Attempts>('GET', `/v1/jobs/${job.id}`)).body;
    const markers = ['start.1', 'end.1', 'start.2', 'end.2'].map((f) => `${f}: ${existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8').trim() : '-'}`).join('; ');
    return { done, after, overlapped, firstEnded, firstAlive, fenced: aLog.text().includes('"msg":"fenced: '), markers };
  } finally {
    proxy.heal();
    await stop(a);
    if (b) await stop(b);
  }
}

test('partition: a runner cut off from Redis kills its job before the lease expires; the retry on another runner never overlaps it', async (t) => {
  const r = await partition(t, {});
  t.diagnostic(`markers: ${r.markers}`);
  assert.equal(r.done.status, 'succeeded', r.markers);
  assert.equal(r.fenced, true, 'runner A logged the fenced attempt');
  assert.equal(r.firstAlive, false, 'the first attempt is dead');
  assert.equal(r.firstEnded, false, `the first attempt was killed, not run to its end (${r.markers})`);
  assert.equal(r.overlapped, false, `the retry found the first attempt still alive when it started (${r.markers})`);
  assert.deepEqual(r.after.attemptHistory.map((x) => [x.attempt, x.runnerId, x.status]), [[1, 'part-a', 'lost'], [2, 'part-b', 'succeeded']]);
  assert.match(r.after.attemptHistory[0]!.error ?? '', /lease expired/);
  assert.deepEqual([r.after.status, r.after.attempts, r.after.lostCount], ['succeeded', 2, 1], 'the stale outcome changed nothing');
  record({
    scenario: 'partition: a runner\'s Redis blackholed mid-job (lease 3 s; duplicated = attempts that overlapped)',
    accepted: 1, succeeded: r.after.status === 'succeeded' ? 1 : 0, lost: r.after.lostCount, duplicated: r.overlapped ? 1 : 0, missing: 0,
  });
});

test('control: with fencing off (fault hook), the same partition runs the retry beside the first attempt, and the probe sees it', async (t) => {
  const r = await partition(t, { DROVER_ENABLE_FAULT_HOOKS: '1', DROVER_FAULT_NO_FENCING: '1' });
  t.diagnostic(`markers: ${r.markers}`);
  assert.equal(r.done.status, 'succeeded', r.markers);
  assert.equal(r.fenced, false);
  assert.equal(r.overlapped, true, `the overlap is detected (${r.markers})`);
});
