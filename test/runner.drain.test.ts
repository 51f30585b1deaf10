import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startService } from './helpers/processes.js';
import { alive, startStack, type Stack, brokerTest } from './helpers/stack.js';

/** A runner as its own process, the way it runs in production. */
function startRunnerProcess(t: TestContext, s: Stack, env: Record<string, string>): ChildProcess {
  return startService(t, 'runner', s.prefix, { DROVER_BROKER: s.config.broker, DROVER_KILL_GRACE_MS: '300', RUNNER_CONCURRENCY: '2', ...env });
}

const running = (j: JobRecord): boolean => j.status === 'running' && j.pid !== null;

brokerTest('SIGTERM: the runner finishes running jobs, takes nothing new, and exits 0', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const first = startRunnerProcess(t, s, { RUNNER_ID: 'drain-a', RUNNER_DRAIN_TIMEOUT_MS: '20000' });
  const busy = [await s.submit({ command: 'sleep 1; echo finished' }), await s.submit({ command: 'sleep 1; echo finished' })];
  const inFlight = await Promise.all(busy.map((j) => s.waitFor(j.id, running)));
  const waiting = [await s.submit({ command: 'echo later' }), await s.submit({ command: 'echo later' })];

  first.kill('SIGTERM');
  const [code] = (await once(first, 'exit')) as [number | null];
  assert.equal(code, 0);
  for (const j of busy) {
    const done = await s.waitFor(j.id);
    assert.equal(done.status, 'succeeded', 'the signal never reached the job');
    assert.equal(done.runnerId, 'drain-a');
  }
  for (const j of waiting) assert.equal((await s.waitFor(j.id, () => true)).status, 'queued', 'nothing new was taken');
  assert.deepEqual(inFlight.map((j) => j.pid!).filter(alive), []);

  // Nothing was lost: the next runner picks up what was left.
  startRunnerProcess(t, s, { RUNNER_ID: 'drain-b' });
  for (const j of waiting) {
    const done = await s.waitFor(j.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.runnerId, 'drain-b');
    assert.equal(done.attempts, 1, 'no job ran twice');
  }
});

brokerTest('SIGTERM past the drain timeout: running jobs are stopped, recorded, and retried per policy', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const first = startRunnerProcess(t, s, { RUNNER_ID: 'drain-c', RUNNER_DRAIN_TIMEOUT_MS: '300' });
  const retried = await s.submit({ command: '[ "$DROVER_ATTEMPT" -ge 2 ] || sleep 30', retries: 1 });
  const final = await s.submit({ command: 'sleep 30', maxLost: 0 });
  const pids = (await Promise.all([retried, final].map((j) => s.waitFor(j.id, running)))).map((j) => j.pid!);

  first.kill('SIGTERM');
  const [code] = (await once(first, 'exit')) as [number | null];
  assert.equal(code, 0);
  assert.deepEqual(pids.filter(alive), [], 'the stopped jobs left no process behind');
  const lost = await s.waitFor(final.id);
  assert.equal(lost.status, 'lost');
  assert.match(lost.error ?? '', /shut down/);
  assert.equal((await s.waitFor(retried.id, () => true)).status, 'queued', 'requeued for its second attempt');

  startRunnerProcess(t, s, { RUNNER_ID: 'drain-d' });
  const done = await s.waitFor(retried.id);
  assert.equal(done.status, 'succeeded');
  assert.equal(done.attempts, 2);
});

brokerTest('kill -9 of a runner takes its jobs down with it; the lease expires and another runner retries them', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const env = { RUNNER_LEASE_MS: '1000' };
  const doomed = startRunnerProcess(t, s, { ...env, RUNNER_ID: 'doomed' });
  const job = await s.submit({ command: '[ "$DROVER_ATTEMPT" -ge 2 ] && echo second || sleep 60', retries: 1 });
  const first = await s.waitFor(job.id, running);
  doomed.kill('SIGKILL');
  await once(doomed, 'exit');
  for (let i = 0; i < 100 && alive(first.pid!); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(alive(first.pid!), false, 'no orphan keeps running the first attempt');

  startRunnerProcess(t, s, { ...env, RUNNER_ID: 'heir' });
  const done = await s.waitFor(job.id);
  assert.equal(done.status, 'succeeded');
  assert.equal(done.runnerId, 'heir');
  assert.equal(done.attempts, 2);
});
