import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { DroverEvent, JobRecord, ScheduleRecord, UnfiredRun, UnfiredRunItem } from '@drover/core';
import { fireDueSchedules } from '../services/scheduler/src/cron-firing.js';
import { cli, cliEnv } from './helpers/cli.js';
import { fireDeps } from './helpers/fire.js';
import { startStack, type Stack } from './helpers/stack.js';

/**
 * Fire times that make no job are recorded: an overlap skip and a misfire (no scheduler at the time) are listed as
 * `unfired` beside the schedule's runs and emit schedule.skipped / schedule.misfired. The scheduler's fire step is
 * driven with an injected clock (no real scheduler, no runner: fired jobs stay queued, i.e. still running).
 */
const THRESHOLD_MS = 60_000;
const START = '2030-01-01T00:00:00Z';
type Runs = { items: (JobRecord | UnfiredRunItem)[]; nextCursor: string | null; unfired?: UnfiredRun[] };
const jobsOf = (r: Runs): JobRecord[] => r.items.filter((i): i is JobRecord => !('kind' in i));
const unfiredOf = (r: Runs): UnfiredRunItem[] => r.items.filter((i): i is UnfiredRunItem => 'kind' in i);

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
  assert.equal(jobsOf(skipped).length, 1, 'the first fire made the one job');
  // The skipped fire is a run of its own, newer than the job, and listed apart too (older clients read that).
  assert.deepEqual(skipped.items.map((i) => i.status), ['skipped', 'queued']);
  const u = unfiredOf(skipped)[0]!;
  assert.equal(u.kind, 'unfired');
  assert.equal(u.state, 'skipped');
  assert.equal(u.scheduledFor, new Date(first + 60_000).toISOString());
  assert.deepEqual(u.runningJobs, [jobsOf(skipped)[0]!.id]);
  assert.deepEqual(skipped.unfired, [{ ...u, kind: undefined, status: undefined }].map(({ kind: _k, status: _s, ...rest }) => rest));
  const sched = (await s.request<ScheduleRecord>('GET', '/v1/schedules/skipper')).body;
  assert.equal(sched.lastSkippedAt, new Date(first + 60_000).toISOString());

  const ev = (await events(s, 'schedule.skipped')).filter((e) => e.data.schedule === 'skipper');
  assert.equal(ev.length, 1);
  assert.equal(ev[0]!.queue, 'default');
  assert.equal(ev[0]!.data.scheduledFor, first + 60_000);

  // Control: overlap=allow fired both times and recorded nothing.
  const allowed = await runs(s, 'allower');
  assert.equal(allowed.items.length, 2);
  assert.equal(jobsOf(allowed).length, 2);
  assert.deepEqual(allowed.unfired, []);
  assert.equal((await events(s, 'schedule.skipped')).filter((e) => e.data.schedule === 'allower').length, 0);
});

test('overlap=skip every second: each skip is listed, but one schedule.skipped event a minute says how many it stands for', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  // Job ids take the injected clock and never go back within a process (monotonic ULIDs): a test that orders jobs
  // among unfired runs starts later than the tests before it.
  await create(s, { name: 'busy', cron: '* * * * * *', overlap: 'skip', startAt: '2031-01-01T00:00:00Z' });
  let at = await nextRunAt(s, 'busy');
  const start = at;
  // 150 fire times, one a second: the first makes the job (no runner takes it), the other 149 are skipped.
  for (let i = 0; i < 150; i++) {
    await fire(at);
    at = await nextRunAt(s, 'busy');
  }
  const r = await runs(s, 'busy');
  assert.equal(jobsOf(r).length, 1);
  assert.equal(r.unfired?.length, 100, 'the newest 100 skips listed (UNFIRED_MAX)');
  assert.equal(unfiredOf(r).length, 100, 'and among the runs');
  assert.equal(r.items.at(-1)!.status, 'queued', 'the job fired first is the oldest run');
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
  assert.equal(jobsOf(skipRuns).length, 0, 'misfire=skip fires nothing');
  assert.deepEqual(skipRuns.items.map((i) => i.status), ['misfired'], 'the misfire is its one run');
  assert.equal(skipRuns.unfired?.length, 1);
  assert.deepEqual({ ...skipRuns.unfired[0]!, recordedAt: undefined }, {
    state: 'misfired', scheduledFor: new Date(first).toISOString(), recordedAt: undefined, missed: 11, fired: false,
  });
  assert.equal(await nextRunAt(s, 'skip-missed'), first + 11 * 60_000, 'resumes at the first fire time after now');

  const onceRuns = await runs(s, 'once-missed');
  assert.equal(jobsOf(onceRuns).length, 1, 'run-once fires one job');
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
  assert.equal(jobsOf(busy).length, 1);
  assert.deepEqual(busy.unfired?.map((u) => [u.state, u.fired]), [['misfired', false], ['skipped', undefined]]);

  // Control: late within the threshold is no misfire; the fire time gets its job.
  await s.request('POST', '/v1/schedules/late/enable');
  const due = await nextRunAt(s, 'late');
  await fire(due + THRESHOLD_MS - 1000);
  const lateRuns = await runs(s, 'late');
  assert.equal(lateRuns.items.length, 1);
  assert.equal(jobsOf(lateRuns)[0]!.scheduledFor, new Date(due).toISOString());
  assert.deepEqual(lateRuns.unfired, []);
});

test('unfired runs: on the page their fire time falls on, each once; the separate list on the first page only; gone with the schedule; hidden from other queues\' tokens', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'gone', misfire: 'skip', job: { command: 'true', queue: 'night' } });
  const first = await nextRunAt(s, 'gone');
  await fire(first + 5 * 60_000);
  assert.equal((await runs(s, 'gone')).unfired?.length, 1);
  // A later page (an older cursor) does not repeat them.
  const paged = (await s.request<Runs>('GET', '/v1/schedules/gone/runs?cursor=01ARZ3NDEKTSV4RRFFQ69G5FAV')).body;
  assert.equal(paged.unfired, undefined);
  assert.deepEqual(paged.items, []);
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

test('unfired runs page with the jobs: a page of 1 job holds the skips between it and the next, every run listed once', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'pages', overlap: 'skip', startAt: '2032-01-01T00:00:00Z' });
  let at = await nextRunAt(s, 'pages');
  // fire, skip, skip, then the job ends and the next fire makes a job, skip; three times over.
  for (let round = 0; round < 3; round++) {
    await fire(at);
    for (let i = 0; i < 2; i++) {
      at = await nextRunAt(s, 'pages');
      await fire(at);
    }
    const r = await runs(s, 'pages');
    for (const j of jobsOf(r)) if (j.status === 'queued') assert.equal((await s.request('POST', `/v1/jobs/${j.id}/cancel`)).status < 300, true);
    at = await nextRunAt(s, 'pages');
  }
  const all = await runs(s, 'pages');
  assert.deepEqual(all.items.map((i) => i.status), ['skipped', 'skipped', 'cancelled', 'skipped', 'skipped', 'cancelled', 'skipped', 'skipped', 'cancelled']);
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: Runs = (await s.request<Runs>('GET', `/v1/schedules/pages/runs?limit=1${cursor ? `&cursor=${cursor}` : ''}`)).body;
    assert.equal(jobsOf(page).length, 1, 'limit counts jobs');
    seen.push(...page.items.map((i) => ('kind' in i ? `${i.status}@${i.scheduledFor}` : i.id)));
    cursor = page.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, all.items.map((i) => ('kind' in i ? `${i.status}@${i.scheduledFor}` : i.id)), 'the pages list the same runs in the same order');
});

test('drover schedules runs: a skipped fire is a row without an id among the jobs; --json prints the runs as the API does', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'cli-skip', overlap: 'skip', startAt: '2033-01-01T00:00:00Z' });
  const first = await nextRunAt(s, 'cli-skip');
  await fire(first);
  await fire(first + 60_000);
  const env = cliEnv(t, s.url, s.tokens.read);
  const human = await cli(t, env, 'schedules', 'runs', 'cli-skip');
  assert.equal(human.code, 0, human.stderr);
  const rows = human.stdout.trim().split('\n');
  assert.match(rows[0]!, /^ID +STATUS +QUEUE/);
  assert.match(rows[1]!, /^- +skipped +- +- +.*overlap skip: [0-9A-Z]{26} still running$/);
  assert.match(rows[2]!, /^[0-9A-Z]{26} +queued +default/);
  const printed = JSON.parse((await cli(t, env, 'schedules', 'runs', 'cli-skip', '--json')).stdout) as Runs['items'];
  assert.deepEqual(printed.map((i) => i.status), ['skipped', 'queued']);
});

test('runs ?kind=jobs: the jobs only, the first page\'s unfired list still there; other kinds are a 400', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  await create(s, { name: 'jobs-only', overlap: 'skip', startAt: '2034-01-01T00:00:00Z' });
  const first = await nextRunAt(s, 'jobs-only');
  await fire(first);
  await fire(first + 60_000);
  const r = (await s.request<Runs>('GET', '/v1/schedules/jobs-only/runs?kind=jobs')).body;
  assert.deepEqual(r.items.map((i) => i.status), ['queued']);
  assert.equal(r.unfired?.length, 1);
  const bad = await s.request<{ error: { code: string } }>('GET', '/v1/schedules/jobs-only/runs?kind=skips');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'VALIDATION');
});
