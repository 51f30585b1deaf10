import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { DroverEvent, JobRecord, ScheduleRecord, UnfiredRun } from '@drover/core';
import { fireDueSchedules } from '../services/scheduler/src/cron-firing.js';
import { fireDeps } from './helpers/fire.js';
import { startStack, type Stack } from './helpers/stack.js';

/**
 * Fire times that make no job are recorded: an overlap skip and a misfire (no scheduler at the time) are listed as
 * `unfired` beside the schedule's runs and emit schedule.skipped / schedule.misfired. The scheduler's fire step is
 * driven with an injected clock (no real scheduler, no runner: fired jobs stay queued, i.e. still running).
 */
const THRESHOLD_MS = 60_000;
const START = '2030-01-01T00:00:00Z';
type Runs = { items: JobRecord[]; nextCursor: string | null; unfired?: UnfiredRun[] };

function firer(t: TestContext, s: Stack): (now: number) => Promise<number> {
  const deps = fireDeps(t, s);
  return (now) => fireDueSchedules(deps, now, THRESHOLD_MS);
}

const nextRunAt = async (s: Stack, name: string): Promise<number> => Date.parse((await s.request<ScheduleRecord>('GET', `/v1/schedules/${name}`)).body.nextRunAt!);
const runs = async (s: Stack, name: string): Promise<Runs> => (await s.request<Runs>('GET', `/v1/schedules/${name}/runs`)).body;
const events = async (s: Stack, type: string): Promise<DroverEvent[]> =>
  (await s.request<{ items: DroverEvent[] }>('GET', `/v1/events?types=${type}&after=0-0&limit=1000`)).body.items;

async function create(s: Stack, body: Record<string, unknown>): Promise<void> {
  // A fixed first fire time (startAt), so schedules created a moment apart share it.
  const r = await s.request('POST', '/v1/schedules', { cron: '* * * * *', startAt: START, job: { command: 'true' }, ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

test('overlap=skip: a fire while the last run is unfinished is a skipped run and a schedule.skipped event; allow is the control', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'skipper', overlap: 'skip' });
  await create(s, { name: 'allower', overlap: 'allow' });
  const first = await nextRunAt(s, 'skipper');
  assert.equal(await nextRunAt(s, 'allower'), first);
  await fire(first);
  await fire(first + 60_000);

  const skipped = await runs(s, 'skipper');
  assert.equal(skipped.items.length, 1, 'the first fire made the one job');
  assert.equal(skipped.unfired?.length, 1);
  const u = skipped.unfired[0]!;
  assert.equal(u.state, 'skipped');
  assert.equal(u.scheduledFor, new Date(first + 60_000).toISOString());
  assert.deepEqual(u.runningJobs, [skipped.items[0]!.id]);
  const sched = (await s.request<ScheduleRecord>('GET', '/v1/schedules/skipper')).body;
  assert.equal(sched.lastSkippedAt, new Date(first + 60_000).toISOString());

  const ev = (await events(s, 'schedule.skipped')).filter((e) => e.data.schedule === 'skipper');
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.queue, 'default');
  assert.equal(ev[0]!.data.scheduledFor, first + 60_000);

  // Control: overlap=allow fired both times and recorded nothing.
  const allowed = await runs(s, 'allower');
  assert.equal(allowed.items.length, 2);
  assert.deepEqual(allowed.unfired, []);
  assert.equal((await events(s, 'schedule.skipped')).filter((e) => e.data.schedule === 'allower').length, 0);
});

test('overlap=skip every second: each skip is listed, but one schedule.skipped event a minute says how many it stands for', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'busy', cron: '* * * * * *', overlap: 'skip' });
  let at = await nextRunAt(s, 'busy');
  const start = at;
  // 150 fire times, one a second: the first makes the job (no runner takes it), the other 149 are skipped.
  for (let i = 0; i < 150; i++) {
    await fire(at);
    at = await nextRunAt(s, 'busy');
  }
  const r = await runs(s, 'busy');
  assert.equal(r.items.length, 1);
  assert.equal(r.unfired?.length, 100, 'the newest 100 skips listed (UNFIRED_MAX)');
  const ev = (await events(s, 'schedule.skipped')).filter((e) => e.data.schedule === 'busy');
  // Skips at start+1 s .. start+149 s: events at the first skip, then 60 s and 120 s after it.
  assert.deepEqual(ev.map((e) => e.data.scheduledFor), [start + 1000, start + 61_000, start + 121_000]);
  assert.deepEqual(ev.map((e) => e.data.skips), [1, 60, 60], 'each counts the skips since the one before');
});

test('misfire: fire times missed while no scheduler ran are one misfired run with how many were missed', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'skip-missed', misfire: 'skip' });
  await create(s, { name: 'once-missed', misfire: 'run-once' });
  await create(s, { name: 'late', misfire: 'skip' });
  const first = await nextRunAt(s, 'skip-missed');
  // Ten minutes and a second late: the fire times first, first+1m, ..., first+10m (11) were missed.
  const now = first + 10 * 60_000 + 1000;
  // Drive only the first two: 'late' is fired within the threshold below.
  await s.request('POST', '/v1/schedules/late/disable');
  await fire(now);

  const skipRuns = await runs(s, 'skip-missed');
  assert.equal(skipRuns.items.length, 0, 'misfire=skip fires nothing');
  assert.equal(skipRuns.unfired?.length, 1);
  assert.deepEqual({ ...skipRuns.unfired[0]!, recordedAt: undefined }, {
    state: 'misfired', scheduledFor: new Date(first).toISOString(), recordedAt: undefined, missed: 11, fired: false,
  });
  assert.equal(await nextRunAt(s, 'skip-missed'), first + 11 * 60_000, 'resumes at the first fire time after now');

  const onceRuns = await runs(s, 'once-missed');
  assert.equal(onceRuns.items.length, 1, 'run-once fires one job');
  assert.equal(onceRuns.unfired?.[0]?.state, 'misfired');
  assert.equal(onceRuns.unfired?.[0]?.missed, 11);
  assert.equal(onceRuns.unfired?.[0]?.fired, true);

  const ev = await events(s, 'schedule.misfired');
  const bySchedule = new Map(ev.map((e) => [e.data.schedule, e.data] as const));
  assert.equal(bySchedule.get('skip-missed')?.missed, 11);
  assert.equal(bySchedule.get('skip-missed')?.fired, false);
  assert.equal(bySchedule.get('once-missed')?.fired, true);

  // run-once that an overlap skip stops: a misfire that fired nothing, and a skip.
  await create(s, { name: 'busy-missed', misfire: 'run-once', overlap: 'skip' });
  const busyFirst = await nextRunAt(s, 'busy-missed');
  await fire(busyFirst); // its one job stays unfinished (no runner)
  await fire(busyFirst + 60_000 + 5 * 60_000);
  const busy = await runs(s, 'busy-missed');
  assert.equal(busy.items.length, 1);
  assert.deepEqual(busy.unfired?.map((u) => [u.state, u.fired]), [['misfired', false], ['skipped', undefined]]);

  // Control: late within the threshold is no misfire; the fire time gets its job.
  await s.request('POST', '/v1/schedules/late/enable');
  const due = await nextRunAt(s, 'late');
  await fire(due + THRESHOLD_MS - 1000);
  const lateRuns = await runs(s, 'late');
  assert.equal(lateRuns.items.length, 1);
  assert.equal(lateRuns.items[0]!.scheduledFor, new Date(due).toISOString());
  assert.deepEqual(lateRuns.unfired, []);
});

test('unfired runs: listed on the first page only, gone with the schedule, hidden from other queues\' tokens', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'gone', misfire: 'skip', job: { command: 'true', queue: 'night' } });
  const first = await nextRunAt(s, 'gone');
  await fire(first + 5 * 60_000);
  assert.equal((await runs(s, 'gone')).unfired?.length, 1);
  // A later page (any cursor) does not repeat them.
  const paged = (await s.request<Runs>('GET', '/v1/schedules/gone/runs?cursor=01ARZ3NDEKTSV4RRFFQ69G5FAV')).body;
  assert.equal(paged.unfired, undefined);
  // The event is filed under the job's queue.
  const ev = (await events(s, 'schedule.misfired')).find((e) => e.data.schedule === 'gone');
  assert.equal(ev?.queue, 'night');

  const restricted = 'tok-other-queue-' + s.prefix;
  s.registry.add(restricted, { name: 'other', scope: 'read', queues: ['day'] });
  const foreign = await s.request('GET', '/v1/schedules/gone/runs', undefined, restricted);
  assert.equal(foreign.status, 404);

  assert.equal((await s.request('DELETE', '/v1/schedules/gone')).status, 200);
  await create(s, { name: 'gone', misfire: 'skip' });
  assert.deepEqual((await runs(s, 'gone')).unfired, [], 'a new schedule of that name starts with none');
});
