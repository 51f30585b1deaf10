// Acting on a whole group: every copy of a replicated job, every running job of a schedule (the schedule stays).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { JobRecord } from '@drover/core';
import { brokerTest, startStack } from './helpers/stack.js';

type Submitted = JobRecord & { replicaJobs: string[] };
type GroupCancelled = { group: string; cancelled: string[]; stopping: string[] };

brokerTest('cancel ?group=1 on any copy stops every copy of its replicas, and nothing else', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_CONCURRENCY: '8' } });
  const group = (await s.request<Submitted>('POST', '/v1/jobs', { command: 'sleep 30', replicas: 3 })).body;
  assert.equal(group.replicaJobs.length, 3);
  // A control of the same command, submitted right after: its id sorts next to the copies.
  const other = await s.submit({ command: 'sleep 30' });
  for (const id of [...group.replicaJobs, other.id]) await s.waitFor(id, (j) => j.status === 'running');

  // By copy 1 (not copy 0): the group is found from any copy.
  const res = await s.request<GroupCancelled>('POST', `/v1/jobs/${group.replicaJobs[1]}/cancel?group=1`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.group, group.replicaJobs[0]);
  assert.deepEqual(res.body.cancelled, [...group.replicaJobs].sort());
  assert.deepEqual(res.body.stopping, []);
  for (const id of group.replicaJobs) assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body.status, 'cancelled');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${other.id}`)).body.status, 'running', 'the control is left alone');

  // Without group: only the one copy (the old behaviour), here on a fresh group of waiting copies.
  const waiting = (await s.request<Submitted>('POST', '/v1/jobs', { command: 'true', replicas: 2, delayMs: 600_000 })).body;
  const single = await s.request<JobRecord>('POST', `/v1/jobs/${waiting.replicaJobs[0]}/cancel`);
  assert.equal(single.body.status, 'cancelled');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${waiting.replicaJobs[1]}`)).body.status, 'delayed');
  const rest = await s.request<GroupCancelled>('POST', `/v1/jobs/${waiting.replicaJobs[0]}/cancel?group=true`);
  assert.deepEqual(rest.body.cancelled, [waiting.replicaJobs[1]], 'the copy still waiting; the one already cancelled is not counted again');

  // A job without replicas is a group of one.
  const lone = await s.submit({ command: 'true', delayMs: 600_000 });
  assert.deepEqual((await s.request<GroupCancelled>('POST', `/v1/jobs/${lone.id}/cancel?group=1`)).body.cancelled, [lone.id]);

  // Bad input: a 400 and nothing changed.
  const bad = await s.request<{ error: { code: string } }>('POST', `/v1/jobs/${other.id}/cancel?group=maybe`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'VALIDATION');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${other.id}`)).body.status, 'running');
  await s.request('POST', `/v1/jobs/${other.id}/cancel`);
});

brokerTest('POST /v1/schedules/:name/kill stops its running jobs and keeps the schedule', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_CONCURRENCY: '8' } });
  const name = `kill-${randomBytes(4).toString('hex')}`;
  const created = await s.request('POST', '/v1/schedules', { name, cron: '0 0 1 1 *', job: { command: 'sleep 30', replicas: 2 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const fired = (await s.request<Submitted>('POST', `/v1/schedules/${name}/trigger`, {})).body;
  const copies = fired.replicaJobs ?? [fired.id];
  assert.equal(copies.length, 2);
  // A job of no schedule, running at the same time: the control.
  const other = await s.submit({ command: 'sleep 30' });
  for (const id of [...copies, other.id]) await s.waitFor(id, (j) => j.status === 'running');

  const res = await s.request<{ schedule: string; interrupted: string[] }>('POST', `/v1/schedules/${name}/kill`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { schedule: name, interrupted: [...copies].sort() });
  for (const id of copies) assert.equal((await s.waitFor(id)).status, 'cancelled');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${other.id}`)).body.status, 'running', 'the control is left alone');
  const after = await s.request<{ name: string; enabled: boolean }>('GET', `/v1/schedules/${name}`);
  assert.equal(after.status, 200, 'the schedule is still there');
  assert.equal(after.body.enabled, true);

  // Nothing running: an empty answer. An unknown schedule: 404.
  assert.deepEqual((await s.request('POST', `/v1/schedules/${name}/kill`)).body, { schedule: name, interrupted: [] });
  assert.equal((await s.request('POST', '/v1/schedules/no-such-schedule/kill')).status, 404);
  await s.request('POST', `/v1/jobs/${other.id}/cancel`);
});
