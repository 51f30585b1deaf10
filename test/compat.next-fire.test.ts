import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startStack, type Stack } from './helpers/stack.js';

// The compatibility adapters store and show a schedule's next fire by the native rule: within startAt/endAt, not on
// an excluded date or one of its calendar's, an @every interval counted from startAt. Fixed dates are far ahead.

interface Sched {
  nextRunAt: string | null;
  startAt?: string;
  endAt?: string;
  excludeDates?: string[];
  calendar?: string;
}

const DAY = 86_400_000;
const utcDate = (at: number): string => new Date(at).toISOString().slice(0, 10);
const tomorrow = (): string => utcDate(Date.now() + DAY);
const PAST = '2020-01-01T00:00:00.000Z';
/** Yearly on 1 January, from mid-2030, skipping the calendar's 2031-01-01: first fire 2032-01-01 (2027-01-01 by cron alone). */
const CALENDAR_TIMING = { cron: '0 9 1 1 *', startAt: '2030-06-01T00:00:00.000Z', calendar: 'holidays' };
const CALENDAR_FIRST = '2032-01-01T09:00:00.000Z';
const EVERY_TIMING = { cron: '@every 1h', startAt: '2030-01-01T00:00:00.000Z' };

async function getSchedule(s: Stack, name: string): Promise<Sched> {
  const r = await s.request<Sched>('GET', `/v1/schedules/${name}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function create(s: Stack, name: string, fields: Record<string, unknown>): Promise<Sched> {
  const r = await s.request<Sched>('POST', '/v1/schedules', { name, cron: '0 12 * * *', job: { command: 'true' }, ...fields });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

async function holidays(s: Stack): Promise<void> {
  assert.equal((await s.request('PUT', '/v1/calendars/holidays', { dates: ['2031-01-01'] })).status, 200);
}

/** qschedule's clients: JSON bodies with the token inside, GETs with ?token=. */
async function qs(s: Stack, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<{ ret: boolean; message: string; data?: { nextRun: number } }> {
  const res = await fetch(`${s.url}${path}`, {
    method,
    ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, token: s.tokens.submit }) } : {}),
  });
  const out = (await res.json()) as { ret: boolean; message: string; data?: { nextRun: number } };
  assert.equal(res.status, 200, JSON.stringify(out));
  return out;
}

const nextRunOf = async (s: Stack, name: string): Promise<number> => (await qs(s, 'GET', `/api/jobs/${name}.do?token=${s.tokens.submit}`)).data!.nextRun;
const epoch = (iso: string | null): number => (iso ? Date.parse(iso) : 0);

test('qschedule: job info, a worker change and on/off keep the native next fire (endAt passed, excluded date, calendar, @every from startAt)', async (t) => {
  const s = await startStack(t, { runner: false });
  await holidays(s);
  const cases: [string, Record<string, unknown>, string | null][] = [
    ['qs.ended', { endAt: PAST }, null],
    ['qs.excluded', { excludeDates: [tomorrow()] }, 'native'],
    ['qs.calendar', CALENDAR_TIMING, CALENDAR_FIRST],
    ['qs.every', EVERY_TIMING, 'native'],
  ];
  for (const [name, fields, want] of cases) {
    const native = await create(s, name, fields);
    const expected = want === 'native' ? native.nextRunAt : want;
    assert.equal(native.nextRunAt, expected, `${name}: the native rule`);
    if (name === 'qs.excluded') assert.notEqual(utcDate(epoch(expected)), tomorrow(), 'not on the excluded date');
    if (name === 'qs.every') assert.ok(epoch(expected) >= Date.parse(EVERY_TIMING.startAt), 'an @every interval counts from startAt');

    assert.equal(await nextRunOf(s, name), epoch(expected), `${name}: job info shows the native next fire (0 for none)`);

    // A worker taken online rewrites the definition: its timing stays and the next fire is the native one.
    assert.equal((await qs(s, 'POST', '/api/workers/state.do', { jobName: name, workers: { 'gone-host:8080': true } })).ret, true);
    const after = await getSchedule(s, name);
    assert.equal(after.nextRunAt, expected, `${name}: stored after workers/state.do`);
    for (const k of ['startAt', 'endAt', 'excludeDates', 'calendar'] as const) assert.deepEqual(after[k], native[k], `${name}: ${k} kept`);
    assert.equal(await nextRunOf(s, name), epoch(expected), `${name}: shown after workers/state.do`);

    await qs(s, 'POST', '/api/jobs/off.do', { jobs: [name] });
    assert.equal(await nextRunOf(s, name), 0, `${name}: disabled, no next run`);
    await qs(s, 'POST', '/api/jobs/on.do', { jobs: [name] });
    assert.equal((await getSchedule(s, name)).nextRunAt, expected, `${name}: stored after on.do`);
  }
});

/** Meproc's clients send the JSON as a form body. */
async function proc(s: Stack, method: 'POST' | 'PUT' | 'DELETE', path: string, json?: unknown): Promise<void> {
  const headers: Record<string, string> = { authorization: `Bearer ${s.tokens.admin}` };
  if (json !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
  assert.deepEqual(await res.json(), { code: 200, msg: 'OK' });
}

async function setTiming(s: Stack, name: string, fields: Record<string, unknown>): Promise<Sched> {
  const r = await s.request<Sched>('PUT', `/v1/schedules/${name}`, fields);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

test('Meproc: a cron task started again keeps the timing set through the native API and its next fire', async (t) => {
  const s = await startStack(t, { runner: false });
  await holidays(s);
  const cases: [string, string, Record<string, unknown>, string | null][] = [
    ['ended', '0 9 * * *', { endAt: PAST }, null],
    ['excluded', '0 12 * * *', { excludeDates: [tomorrow()] }, 'native'],
    ['calendar', CALENDAR_TIMING.cron, { startAt: CALENDAR_TIMING.startAt, calendar: 'holidays' }, CALENDAR_FIRST],
  ];
  for (const [task, cron, timing, want] of cases) {
    const name = `meproc.${task}`;
    await proc(s, 'POST', '/proc', { name: task, cmd: 'true', type: 'cron', cron, replica: 1 });
    const native = await setTiming(s, name, timing);
    const expected = want === 'native' ? native.nextRunAt : want;
    assert.equal(native.nextRunAt, expected, `${name}: the native rule`);
    // PUT /proc restarts the task: its schedule is written again.
    await proc(s, 'PUT', `/proc?name=${task}`);
    const after = await getSchedule(s, name);
    assert.equal(after.nextRunAt, expected, `${name}: stored after the restart`);
    for (const k of ['startAt', 'endAt', 'excludeDates', 'calendar'] as const) assert.deepEqual(after[k], native[k], `${name}: ${k} kept`);
    await proc(s, 'DELETE', `/proc?name=${task}`);
  }

  // A native @every schedule from startAt that a Meproc task of the same name then takes over.
  const native = await create(s, 'meproc.every', { ...EVERY_TIMING, job: { command: 'true', queue: s.config.compat.queue } });
  assert.ok(epoch(native.nextRunAt) >= Date.parse(EVERY_TIMING.startAt));
  await proc(s, 'POST', '/proc', { name: 'every', cmd: 'true', type: 'cron', cron: EVERY_TIMING.cron, replica: 1 });
  assert.equal((await getSchedule(s, 'meproc.every')).nextRunAt, native.nextRunAt, 'the interval still counts from startAt');
  await proc(s, 'DELETE', '/proc?name=every');
});
