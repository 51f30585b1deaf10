import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { record } from '../helpers/audit.js';
import { startServiceReady } from '../helpers/processes.js';
import { startStack } from '../helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('both schedulers killed for 3 s and restarted: every fire time of a 1 s cron gets exactly one job', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const schedulers = await Promise.all([startServiceReady(t, 'scheduler', s.prefix), startServiceReady(t, 'scheduler', s.prefix)]);
  await s.request('POST', '/v1/schedules', { name: 'beat', cron: '* * * * * *', job: { argv: ['true'] } });
  await sleep(3000);
  for (const p of schedulers) p.kill('SIGKILL');
  await Promise.all(schedulers.map((p) => once(p, 'exit')));
  await sleep(3000);
  await Promise.all([startServiceReady(t, 'scheduler', s.prefix), startServiceReady(t, 'scheduler', s.prefix)]);
  await sleep(3000);
  await s.request('POST', '/v1/schedules/beat/disable');

  const jobs = (await s.request<{ items: JobRecord[] }>('GET', '/v1/schedules/beat/runs?limit=1000')).body.items;
  const times = jobs.map((j) => Date.parse(j.scheduledFor!)).sort((a, b) => a - b);
  const expected = (times[times.length - 1]! - times[0]!) / 1000 + 1;
  const duplicated = times.length - new Set(times).size;
  const missing = expected - new Set(times).size;
  record({ scenario: 'kill -9 both schedulers 3 s (1 s cron, misfire threshold 60 s)', accepted: expected, succeeded: new Set(times).size, lost: 0, duplicated, missing });
  assert.equal(duplicated, 0, 'no fire time doubled');
  assert.equal(missing, 0, 'no fire time lost: the restarted schedulers caught up');
  assert.ok(expected >= 8);
});
