import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack, brokerTest } from './helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function allRuns(s: Awaited<ReturnType<typeof startStack>>, name: string): Promise<JobRecord[]> {
  return (await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/${name}/runs?limit=1000&kind=jobs`)).body.items;
}

test('overlap=skip: no run starts while the previous one runs', async (t) => {
  const s = await startStack(t, { env: { RUNNER_CONCURRENCY: '5' } });
  await s.request('POST', '/v1/schedules', { name: 'slow', cron: '* * * * * *', overlap: 'skip', job: { command: 'sleep 1.6' } });
  await sleep(5200);
  await s.request('POST', '/v1/schedules/slow/disable');
  const jobs = await Promise.all((await allRuns(s, 'slow')).map((j) => s.waitFor(j.id)));
  assert.ok(jobs.length >= 2 && jobs.length <= 3, `${jobs.length} runs in 5 s of a 1.6 s job fired every second`);
  jobs.sort((a, b) => Date.parse(a.startedAt!) - Date.parse(b.startedAt!));
  for (let i = 1; i < jobs.length; i++) {
    assert.ok(Date.parse(jobs[i]!.startedAt!) >= Date.parse(jobs[i - 1]!.finishedAt!), 'runs never overlap');
  }
});

brokerTest('overlap=replace: each fire cancels the run still going', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_CONCURRENCY: '5', DROVER_KILL_GRACE_MS: '200' } });
  await s.request('POST', '/v1/schedules', { name: 'latest', cron: '* * * * * *', overlap: 'replace', job: { command: 'sleep 30' } });
  await sleep(3300);
  await s.request('POST', '/v1/schedules/latest/disable');
  const ids = (await allRuns(s, 'latest')).map((j) => j.id).sort();
  assert.ok(ids.length >= 3);
  const earlier = await Promise.all(ids.slice(0, -1).map((id) => s.waitFor(id)));
  assert.ok(earlier.every((j) => j.status === 'cancelled'), earlier.map((j) => j.status).join(','));
  const last = await s.waitFor(ids[ids.length - 1]!, (j) => j.status === 'running' || j.status === 'queued');
  assert.ok(['running', 'queued'].includes(last.status));
  const sched = await s.request<{ runningJobs: string[] }>('GET', '/v1/schedules/latest');
  assert.deepEqual(sched.body.runningJobs, [last.id]);
  await s.request('POST', `/v1/jobs/${last.id}/cancel`);
});

test('a schedule counts consecutive failures and resets on success', async (t) => {
  const s = await startStack(t);
  await s.request('POST', '/v1/schedules', { name: 'flaky', cron: '0 0 1 1 *', job: { command: 'exit "${1:-0}"' } });
  for (const code of ['1', '2']) {
    const r = await s.request<JobRecord>('POST', '/v1/schedules/flaky/trigger', { args: [code] });
    await s.waitFor(r.body.id);
  }
  let sched = await s.request<{ consecutiveFailures: number; lastState: string }>('GET', '/v1/schedules/flaky');
  assert.deepEqual([sched.body.consecutiveFailures, sched.body.lastState], [2, 'failed']);
  const ok = await s.request<JobRecord>('POST', '/v1/schedules/flaky/trigger', {});
  await s.waitFor(ok.body.id);
  sched = await s.request('GET', '/v1/schedules/flaky');
  assert.deepEqual([sched.body.consecutiveFailures, sched.body.lastState], [0, 'succeeded']);
});
