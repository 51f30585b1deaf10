import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startServiceReady } from './helpers/processes.js';
import { startStack, type Stack, brokerTest } from './helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runs(s: Stack, name: string): Promise<JobRecord[]> {
  const res = await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/${name}/runs?limit=1000`);
  return res.body.items.sort((a, b) => Date.parse(a.scheduledFor!) - Date.parse(b.scheduledFor!));
}

async function waitForRuns(s: Stack, name: string, n: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await runs(s, name)).length < n) {
    assert.ok(Date.now() < deadline, `${name} did not reach ${n} runs`);
    await sleep(100);
  }
}

brokerTest('two scheduler processes, a 1-second cron: exactly one job per fire time, none after disabling', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false, scheduler: false });
  const env = { DROVER_BROKER: broker };
  await Promise.all([startServiceReady(t, 'scheduler', s.prefix, env), startServiceReady(t, 'scheduler', s.prefix, env)]);
  const created = await s.request('POST', '/v1/schedules', { name: 'tick', cron: '* * * * * *', job: { argv: ['true'] } });
  assert.equal(created.status, 201);
  await waitForRuns(s, 'tick', 10);
  await s.request('POST', '/v1/schedules/tick/disable');
  const atDisable = await runs(s, 'tick');
  await sleep(1500);
  const jobs = await runs(s, 'tick');
  assert.equal(jobs.length, atDisable.length, 'nothing fires after disable');
  const times = jobs.map((j) => Date.parse(j.scheduledFor!));
  assert.equal(new Set(times).size, times.length, 'no fire time produced two jobs');
  for (let i = 1; i < times.length; i++) assert.equal(times[i]! - times[i - 1]!, 1000, 'no fire time was missed');
  assert.ok(times.length >= 10);
  const lateness = jobs.map((j) => Date.parse(j.createdAt) - Date.parse(j.scheduledFor!));
  for (const l of lateness) assert.ok(l < 1000, `fired on time: ${lateness.join(',')}`);
});

test('scheduler down across fire times: misfire=skip fires nothing for them, run-once fires once', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const env = { SCHEDULER_MISFIRE_THRESHOLD_MS: '1000' };
  const first = await startServiceReady(t, 'scheduler', s.prefix, env);
  for (const misfire of ['skip', 'run-once']) {
    await s.request('POST', '/v1/schedules', { name: misfire, cron: '* * * * * *', misfire, job: { argv: ['true'] } });
  }
  await waitForRuns(s, 'skip', 2);
  first.kill('SIGKILL');
  await once(first, 'exit');
  const downAt = Date.now();
  await sleep(3500);
  await startServiceReady(t, 'scheduler', s.prefix, env);
  const before = (await runs(s, 'run-once')).length;
  await waitForRuns(s, 'run-once', before + 3);
  await s.request('POST', '/v1/schedules/disable', { names: ['skip', 'run-once'] });

  const late = (j: JobRecord): boolean => Date.parse(j.createdAt) - Date.parse(j.scheduledFor!) > 1000;
  const skip = await runs(s, 'skip');
  assert.deepEqual(skip.filter(late), [], 'skip: no job for a missed time');
  const gap = skip.findIndex((j, i) => i > 0 && Date.parse(j.scheduledFor!) - Date.parse(skip[i - 1]!.scheduledFor!) > 1000);
  assert.ok(gap > 0, 'skip: the missed seconds are a gap');
  const once_ = await runs(s, 'run-once');
  const lateOnes = once_.filter(late);
  assert.equal(lateOnes.length, 1, 'run-once: exactly one job for all the missed times');
  assert.ok(Date.parse(lateOnes[0]!.scheduledFor!) >= downAt - 1000);
  const sched = await s.request<{ lastMisfireAt: string | null }>('GET', '/v1/schedules/skip');
  assert.ok(sched.body.lastMisfireAt, 'the misfire is visible on the schedule');
});
