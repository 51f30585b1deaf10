import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test, type TestContext } from 'node:test';
import {
  DroverMetrics, JobStore, ScheduleStore, createLogger, createRedis, everyIntervalMs, nextFireTimes, nextScheduleFire, validateCron,
  type DueSchedule, type JobRecord, type ScheduleRecord, type Transport,
} from '@drover/core';
import { fireDueSchedules, planFire } from '../services/scheduler/src/cron-firing.js';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';

/** More schedule kinds and options: @every, @midnight, jitter, startAt/endAt, exclusions and calendars, preview `from`,
 * disabled upcoming, trigger options, replicas' ids, the last run's runner. Fires are driven with an injected clock. */
type Sched = ScheduleRecord & { upcoming?: string[]; lastRunner: string | null; lastRunnerHost: string | null };
type Problem = { error: { code: string; details?: { field: string }[] } };

function firer(t: TestContext, s: Stack, random?: () => number): (now: number) => Promise<number> {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const store = new JobStore(redis, s.prefix);
  const schedules = new ScheduleStore(redis, store.keys);
  const transport = { capabilities: { priorities: false }, publish: async () => undefined } as unknown as Transport;
  const deps = { store, schedules, transport, log: createLogger('silent', 'test'), metrics: new DroverMetrics({ defaultMetrics: false }), ...(random ? { random } : {}) };
  return (now) => fireDueSchedules(deps, now, 60_000);
}
const get = async (s: Stack, name: string): Promise<Sched> => (await s.request<Sched>('GET', `/v1/schedules/${name}`)).body;
const runs = async (s: Stack, name: string): Promise<JobRecord[]> => (await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/${name}/runs?limit=1000&kind=jobs`)).body.items;
async function create(s: Stack, body: Record<string, unknown>): Promise<Sched> {
  const r = await s.request<Sched>('POST', '/v1/schedules', { job: { command: 'true' }, ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}
async function refused(s: Stack, body: Record<string, unknown>, field: string): Promise<void> {
  const r = await s.request<Problem>('POST', '/v1/schedules', { name: 'refused', job: { command: 'true' }, ...body });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.ok(r.body.error.details?.some((d) => d.field.includes(field)), JSON.stringify(r.body));
  assert.equal((await s.request('GET', '/v1/schedules/refused')).status, 404, 'nothing stored');
}
const localHm = (iso: string, tz: string): string =>
  new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(iso));

test('@every: intervals parse (90s, 5m, 1h30m), refuse nonsense, and count from the anchor', () => {
  assert.equal(everyIntervalMs('@every 90s'), 90_000);
  assert.equal(everyIntervalMs('@every 5m'), 300_000);
  assert.equal(everyIntervalMs('@every 1h30m'), 5_400_000);
  assert.equal(everyIntervalMs('*/5 * * * *'), null);
  for (const bad of ['@every', '@every 0s', '@every 5x', '@every 1.5m']) assert.throws(() => validateCron(bad, 'UTC'), /@every|alias|Validation/, bad);
  const anchor = Date.parse('2026-01-01T00:00:10Z');
  assert.deepEqual(nextFireTimes('@every 90s', 'UTC', anchor + 100_000, 2, anchor).map((t) => t - anchor), [180_000, 270_000]);
  // DST does not move an interval: across Berlin's fall-back, still 30 minutes of real time apart.
  const night = Date.parse('2026-10-25T00:10:00Z');
  const t = nextFireTimes('@every 30m', 'Europe/Berlin', night, 4);
  assert.deepEqual(t.map((x, i) => x - (t[i - 1] ?? night)), [1_800_000, 1_800_000, 1_800_000, 1_800_000]);
});

test('@every through the API and the scheduler: anchored at creation, a late fire keeps the phase, a misfire too', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  const made = await create(s, { name: 'interval', cron: '@every 90s' });
  const created = Date.parse(made.createdAt);
  assert.equal(Date.parse(made.nextRunAt!) - created, 90_000);
  const upcoming = (await get(s, 'interval')).upcoming!.map((x) => Date.parse(x) - created);
  assert.deepEqual(upcoming, [90_000, 180_000, 270_000, 360_000, 450_000]);
  await fire(created + 95_000); // 5 s late: within the threshold
  assert.equal(Date.parse((await get(s, 'interval')).nextRunAt!) - created, 180_000);
  await fire(created + 180_000 + 10 * 60_000); // ten minutes down: misfire, resumes on the same grid
  const after = Date.parse((await get(s, 'interval')).nextRunAt!) - created;
  assert.equal(after % 90_000, 0);
  assert.ok(after > 180_000 + 10 * 60_000 && after <= 180_000 + 10 * 60_000 + 90_000);
  assert.equal((await runs(s, 'interval')).length, 2, 'the late fire and one for the misfire (run-once)');
  await refused(s, { cron: '@every 0s' }, 'cron');
  await refused(s, { cron: '@every soon' }, 'cron');
  // Control: an hourly cron is not anchored at creation.
  const hourly = await create(s, { name: 'hourly', cron: '@hourly' });
  assert.equal(Date.parse(hourly.nextRunAt!) % 3_600_000, 0);
});

test('@midnight and @daily fire at local midnight in the schedule\'s zone', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  for (const cron of ['@midnight', '@daily']) {
    await create(s, { name: cron.slice(1), cron, timezone: 'Europe/Berlin' });
    const up = (await get(s, cron.slice(1))).upcoming!;
    assert.equal(up.length, 5);
    assert.ok(up.every((x) => localHm(x, 'Europe/Berlin').endsWith('00:00')), up.join(' '));
  }
});

test('jitterMs: each fire starts within [fire time, fire time + jitter], delayed, scheduledFor unchanged; 0 is the control', async (t) => {
  const due: DueSchedule = { name: 'j', nextRunAt: 1_000_000, version: '1', def: { cron: '* * * * *', timezone: 'UTC', overlap: 'allow', misfire: 'run-once', description: '', alertAfterFailures: null, jitterMs: 5000 } };
  assert.equal(planFire(due, 1_000_000, 60_000, undefined, () => 0).runAt, 1_000_000);
  assert.equal(planFire(due, 1_000_000, 60_000, undefined, () => 0.999_999_9).runAt, 1_005_000);
  assert.equal(planFire({ ...due, def: { ...due.def, jitterMs: 0 } }, 1_000_000, 60_000, undefined, () => 0.5).runAt, null);

  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s, () => 0.5);
  await create(s, { name: 'jittery', cron: '* * * * *', jitterMs: 30_000, startAt: '2030-01-01T00:00:00Z' });
  await create(s, { name: 'steady', cron: '* * * * *', startAt: '2030-01-01T00:00:00Z' });
  assert.equal((await get(s, 'jittery')).jitterMs, 30_000);
  const at = Date.parse((await get(s, 'jittery')).nextRunAt!);
  await fire(at);
  const [j] = await runs(s, 'jittery');
  assert.equal(j!.status, 'delayed');
  assert.equal(j!.scheduledFor, new Date(at).toISOString());
  assert.equal(Date.parse(j!.runAt!) - at, 15_000);
  const [plain] = await runs(s, 'steady');
  assert.equal(plain!.status, 'queued');
  await refused(s, { name: 'x', cron: '* * * * *', jitterMs: 3_600_001 }, 'jitterMs');
});

test('startAt/endAt bound the fire times; excludeDates skip local dates; bad values are 400 with nothing stored', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  const b = await create(s, { name: 'bounded', cron: '* * * * *', startAt: '2030-01-01T00:00:00Z', endAt: '2030-01-01T00:03:00Z' });
  assert.equal(b.nextRunAt, '2030-01-01T00:00:00.000Z');
  assert.deepEqual((await get(s, 'bounded')).upcoming, ['00', '01', '02', '03'].map((m) => `2030-01-01T00:${m}:00.000Z`));
  for (const m of ['00', '01', '02', '03']) await fire(Date.parse(`2030-01-01T00:${m}:00Z`));
  assert.equal((await get(s, 'bounded')).nextRunAt, null, 'past endAt: no next fire');
  assert.equal((await runs(s, 'bounded')).length, 4);
  // PUT null clears endAt: it fires again.
  const cleared = await s.request<Sched>('PUT', '/v1/schedules/bounded', { endAt: null });
  assert.equal(cleared.status, 200);
  assert.equal(cleared.body.endAt, undefined);
  assert.ok(cleared.body.nextRunAt !== null);

  await create(s, { name: 'xmas', cron: '0 9 * * *', timezone: 'Europe/Berlin', startAt: '2030-12-24T00:00:00+01:00', excludeDates: ['2030-12-26', '2030-12-25'] });
  const days = (await get(s, 'xmas')).upcoming!.map((x) => localHm(x, 'Europe/Berlin'));
  assert.deepEqual(days, ['2030-12-24, 09:00', '2030-12-27, 09:00', '2030-12-28, 09:00', '2030-12-29, 09:00', '2030-12-30, 09:00']);
  assert.deepEqual((await get(s, 'xmas')).excludeDates, ['2030-12-25', '2030-12-26']);

  // A per-second cron skips a whole excluded day in one step, to the next local midnight.
  assert.equal(new Date(nextScheduleFire({ cron: '* * * * * *', timezone: 'Europe/Berlin', excludeDates: ['2030-12-25'] }, Date.parse('2030-12-24T22:59:59Z'))!).toISOString(), '2030-12-25T23:00:00.000Z');
  assert.equal(nextScheduleFire({ cron: '* * * * * *', timezone: 'UTC', excludeDates: ['2030-12-25'] }, Date.parse('2030-12-24T12:00:00Z')), Date.parse('2030-12-24T12:00:01Z'), 'control: the day before fires');
  await refused(s, { cron: '* * * * *', startAt: '2030-01-02T00:00:00Z', endAt: '2030-01-01T00:00:00Z' }, 'endAt');
  await refused(s, { cron: '* * * * *', excludeDates: ['2030-02-30'] }, 'excludeDates');
  await refused(s, { cron: '* * * * *', excludeDates: ['25.12.2030'] }, 'excludeDates');
  await refused(s, { cron: '* * * * *', excludeDates: ['2030-13-01'] }, 'excludeDates');
  await refused(s, { cron: '* * * * *', startAt: 'tomorrow' }, 'startAt');
});

test('calendars: admin PUT/GET/DELETE, a schedule skips its dates, an unknown calendar is 400, other tokens are refused', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const fire = firer(t, s);
  const put = await s.request<{ name: string; dates: string[] }>('PUT', '/v1/calendars/holidays', { dates: ['2030-12-25', '2030-01-01', '2030-12-25'] });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.deepEqual(put.body.dates, ['2030-01-01', '2030-12-25']);
  assert.equal((await s.request('PUT', '/v1/calendars/holidays', { dates: ['2030-13-01'] })).status, 400);
  assert.equal((await s.request('PUT', '/v1/calendars/other', { dates: [] }, s.tokens.submit)).status, 403);
  assert.equal((await s.request('GET', '/v1/calendars', undefined, s.tokens.read)).status, 403);
  assert.equal((await s.request('GET', '/v1/calendars/other')).status, 404, 'the refused PUT stored nothing');
  const list = await s.request<{ items: { name: string }[] }>('GET', '/v1/calendars');
  assert.deepEqual(list.body.items.map((c) => c.name), ['holidays']);

  await create(s, { name: 'daily', cron: '0 9 * * *', calendar: 'holidays', startAt: '2030-12-24T00:00:00Z' });
  const up = (await get(s, 'daily')).upcoming!.map((x) => x.slice(0, 10));
  assert.deepEqual(up, ['2030-12-24', '2030-12-26', '2030-12-27', '2030-12-28', '2030-12-29']);
  await refused(s, { cron: '0 9 * * *', calendar: 'nope' }, 'calendar');

  // A date added after the next fire time was computed is skipped when it comes: no job, the schedule moves on.
  await s.request('PUT', '/v1/calendars/holidays', { dates: ['2030-01-01', '2030-12-24', '2030-12-25'] });
  await fire(Date.parse('2030-12-24T09:00:00Z'));
  assert.equal((await runs(s, 'daily')).length, 0);
  assert.equal((await get(s, 'daily')).nextRunAt, '2030-12-26T09:00:00.000Z');

  assert.equal((await s.request('DELETE', '/v1/calendars/holidays')).status, 200);
  assert.equal((await s.request('DELETE', '/v1/calendars/holidays')).status, 404);
});

test('cron preview takes from and answers each fire time\'s UTC offset', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const q = `cron=${encodeURIComponent('*/30 * * * *')}&timezone=America/New_York&count=6&from=2027-11-07T04:10:00Z`;
  const r = await s.request<{ from: string; next: string[]; offsets: string[] }>('GET', `/v1/cron/preview?${q}`, undefined, s.tokens.read);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.from, '2027-11-07T04:10:00.000Z');
  assert.deepEqual(r.body.next.map((x) => x.slice(11, 16)), ['04:30', '05:00', '05:30', '07:00', '07:30', '08:00']);
  assert.deepEqual(r.body.offsets, ['-04:00', '-04:00', '-04:00', '-05:00', '-05:00', '-05:00']);
  const every = await s.request<{ next: string[] }>('GET', `/v1/cron/preview?cron=${encodeURIComponent('@every 1h30m')}&from=2030-01-01T00:00:00Z&count=2`);
  assert.deepEqual(every.body.next, ['2030-01-01T01:30:00.000Z', '2030-01-01T03:00:00.000Z']);
  assert.equal((await s.request('GET', '/v1/cron/preview?cron=@daily&from=yesterday')).status, 400);
  assert.equal((await s.request('GET', '/v1/cron/preview?cron=@midnight')).status, 200);
});

test('a disabled schedule shows no upcoming fire times; enabled again it does', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  await create(s, { name: 'toggle', cron: '*/5 * * * *' });
  assert.equal((await get(s, 'toggle')).upcoming!.length, 5);
  await s.request('POST', '/v1/schedules/toggle/disable');
  const off = await get(s, 'toggle');
  assert.deepEqual([off.nextRunAt, off.upcoming], [null, []]);
  await s.request('POST', '/v1/schedules/toggle/enable');
  assert.equal((await get(s, 'toggle')).upcoming!.length, 5);
});

test('trigger: replicas answer every id; env, args and ignoreDependencies for job and workflow schedules', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  await create(s, { name: 'fleet', cron: '0 0 1 1 *', job: { command: 'true', replicas: 3 } });
  const fleet = await s.request<JobRecord & { replicaJobs?: string[] }>('POST', '/v1/schedules/fleet/trigger', {});
  assert.equal(fleet.status, 201);
  assert.equal(fleet.body.replicaJobs?.length, 3);
  assert.equal(fleet.body.replicaJobs[0], fleet.body.id);
  assert.deepEqual((await runs(s, 'fleet')).map((j) => j.id).sort(), [...fleet.body.replicaJobs].sort());
  // Control: a single job answers no replicaJobs.
  await create(s, { name: 'single', cron: '0 0 1 1 *', job: { command: 'true', dependsOn: ['upstream'] } });
  const single = await s.request<JobRecord & { replicaJobs?: string[] }>('POST', '/v1/schedules/single/trigger', { ignoreDependencies: true });
  assert.equal(single.body.replicaJobs, undefined);
  assert.deepEqual(single.body.dependsOn, []);
  const withDeps = await s.request<JobRecord>('POST', '/v1/schedules/single/trigger', {});
  assert.deepEqual(withDeps.body.dependsOn, ['upstream'], 'control: without it the template\'s dependsOn stays');

  const steps = [{ name: 'a', job: { command: 'true' } }, { name: 'b', dependsOn: ['a'], job: { command: 'true', env: { KEEP: '1' } } }];
  await create(s, { name: 'flow', cron: '0 0 1 1 *', job: undefined, workflow: { steps } });
  const statuses = async (): Promise<Map<string, JobRecord>> => new Map((await runs(s, 'flow')).map((j) => [j.labels['drover.step']!, j] as const));
  const plain = await s.request('POST', '/v1/schedules/flow/trigger', {});
  assert.equal(plain.status, 201);
  assert.equal((await statuses()).get('b')!.status, 'waiting', 'control: b waits on a');
  const free = await s.request<JobRecord>('POST', '/v1/schedules/flow/trigger', { ignoreDependencies: true, env: { EXTRA: 'x' }, args: ['go'] });
  assert.equal(free.status, 201, JSON.stringify(free.body));
  const newest = (await runs(s, 'flow')).filter((j) => j.createdAt >= free.body.createdAt);
  assert.equal(newest.length, 2);
  for (const j of newest) {
    assert.equal(j.status, 'queued', `${j.labels['drover.step']} starts at once`);
    assert.ok((j as JobRecord & { envKeys?: string[] }).envKeys?.includes('EXTRA'));
    assert.deepEqual(j.args, ['go']);
  }
  const b = newest.find((j) => j.labels['drover.step'] === 'b') as JobRecord & { envKeys?: string[] };
  assert.ok(b.envKeys?.includes('KEEP'), 'env is merged into the step\'s own');
  assert.equal((await s.request('POST', '/v1/schedules/flow/trigger', { env: { 'BAD-NAME': '1' } })).status, 400);
});

test('a schedule shows the runner and host of its last run (real runner)', async (t) => {
  const s = await startStack(t);
  await create(s, { name: 'where', cron: '0 0 1 1 *' });
  assert.deepEqual([(await get(s, 'where')).lastRunner, (await get(s, 'where')).lastRunnerHost], [null, null], 'control: no run yet');
  const r = await s.request<JobRecord>('POST', '/v1/schedules/where/trigger', {});
  const done = await s.waitFor(r.body.id);
  assert.equal(done.status, 'succeeded');
  const sched = await get(s, 'where');
  assert.equal(sched.lastRunner, s.config.runner.id);
  assert.equal(sched.lastRunnerHost, hostname());
  const listed = (await s.request<{ items: Sched[] }>('GET', '/v1/schedules')).body.items.find((x) => x.name === 'where');
  assert.equal(listed?.lastRunnerHost, hostname());
});
