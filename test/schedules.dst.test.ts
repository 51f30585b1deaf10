import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { nextFireTimes, type JobRecord, type ScheduleRecord } from '@drover/core';
import { fireDueSchedules } from '../services/scheduler/src/cron-firing.js';
import { fireDeps } from './helpers/fire.js';
import { startStack, type Stack } from './helpers/stack.js';

/**
 * One DST rule for every spelling of a cron expression: a local time that happens twice fires once, at its first
 * occurrence; a local time skipped by spring-forward fires at the instant it would have been under the old offset;
 * fires that land on one instant fire once. Checked over the four 2026 transitions of Berlin and New York.
 */
const fires = (cron: string, tz: string, from: string, to: string): string[] =>
  nextFireTimes(cron, tz, Date.parse(from), 200).filter((t) => t <= Date.parse(to)).map((t) => new Date(t).toISOString());

/** Local wall-clock time with its offset, e.g. "01:30 -04:00", for readable expectations. */
function local(iso: string, tz: string): string {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: tz, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'longOffset' }).formatToParts(new Date(iso));
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  const sec = get('second') === '00' ? '' : `:${get('second')}`;
  return `${get('hour')}:${get('minute')}${sec} ${get('timeZoneName').replace('GMT', '') || '+00:00'}`;
}

interface Case {
  zone: string;
  /** A window around the transition (UTC). */
  from: string;
  to: string;
  spellings: string[];
  /** The fire times in the window, as local time and offset. */
  expect: string[];
}

const NY_FALL = { zone: 'America/New_York', from: '2026-11-01T04:00:00Z', to: '2026-11-01T08:30:00Z' }; // 00:00 EDT .. 03:30 EST
const NY_SPRING = { zone: 'America/New_York', from: '2026-03-08T05:00:00Z', to: '2026-03-08T08:30:00Z' }; // 00:00 EST .. 04:30 EDT
const BER_FALL = { zone: 'Europe/Berlin', from: '2026-10-24T23:00:00Z', to: '2026-10-25T02:30:00Z' }; // 01:00 CEST .. 03:30 CET
const BER_SPRING = { zone: 'Europe/Berlin', from: '2026-03-29T00:00:00Z', to: '2026-03-29T02:30:00Z' }; // 01:00 CET .. 04:30 CEST

const CASES: Case[] = [
  {
    ...NY_FALL,
    // The pair: a star and a list must agree; 01:00 and 01:30 fire once (EDT), not again at EST.
    spellings: ['*/30 * 1 11 *', '0,30 0-3 1 11 *', '0,30 * * * *', '0/30 0-3 * * *', '0 0,30 * * * *', '0 */30 0-3 * * *'],
    expect: ['00:30 -04:00', '01:00 -04:00', '01:30 -04:00', '02:00 -05:00', '02:30 -05:00', '03:00 -05:00', '03:30 -05:00'],
  },
  {
    ...NY_FALL,
    spellings: ['0 * * * *', '@hourly', '0 0-23 * * *', '0 0 * * * *', '0 0,1,2,3 * * *'],
    expect: ['01:00 -04:00', '02:00 -05:00', '03:00 -05:00'],
  },
  {
    ...NY_FALL,
    spellings: ['30 1 * * *', '30 1-1 * * *', '0 30 1 * * *'],
    expect: ['01:30 -04:00'],
  },
  {
    ...NY_SPRING,
    // 02:00-02:59 EST does not exist: 02:00 -> 03:00 EDT, 02:30 -> 03:30 EDT, each once beside the real 03:00/03:30.
    spellings: ['*/30 * * * *', '0,30 0-4 * * *', '0 */30 * * * *'],
    expect: ['00:30 -05:00', '01:00 -05:00', '01:30 -05:00', '03:00 -04:00', '03:30 -04:00', '04:00 -04:00', '04:30 -04:00'],
  },
  {
    ...NY_SPRING,
    spellings: ['0,30 2,3 8 3 *', '0,30 2-3 * * *', '0 0,30 2,3 * * *'],
    expect: ['03:00 -04:00', '03:30 -04:00'],
  },
  {
    ...NY_SPRING,
    spellings: ['30 2 * * *', '30 2-2 8 3 *', '0 30 2 * * *'],
    expect: ['03:30 -04:00'],
  },
  {
    ...NY_SPRING,
    spellings: ['0 * * * *', '@hourly', '0 0 */1 * * *'],
    expect: ['01:00 -05:00', '03:00 -04:00', '04:00 -04:00'],
  },
  {
    ...BER_FALL,
    spellings: ['*/30 * * * *', '0,30 1-3 * * *', '0 0,30 * * * *'],
    expect: ['01:30 +02:00', '02:00 +02:00', '02:30 +02:00', '03:00 +01:00', '03:30 +01:00'],
  },
  {
    ...BER_FALL,
    spellings: ['30 2 * * *', '30 2 25 10 *', '0 30 2 * * *'],
    expect: ['02:30 +02:00'],
  },
  {
    ...BER_SPRING,
    spellings: ['*/30 * * * *', '0,30 1-4 * * *', '0 */30 * * * *'],
    expect: ['01:30 +01:00', '03:00 +02:00', '03:30 +02:00', '04:00 +02:00', '04:30 +02:00'],
  },
  {
    ...BER_SPRING,
    spellings: ['30 2 * * *', '30 2 29 3 *', '0 30 2 * * *'],
    expect: ['03:30 +02:00'],
  },
  {
    ...BER_SPRING,
    // Seconds inside the gap shift with it (02:00:30 -> 03:00:30), and land once.
    spellings: ['30 0 2 * * *'],
    expect: ['03:00:30 +02:00'],
  },
];

for (const c of CASES) {
  test(`DST ${c.zone} ${c.from.slice(0, 10)}: ${c.spellings.join(' | ')}`, () => {
    for (const spelling of c.spellings) {
      const got = fires(spelling, c.zone, c.from, c.to);
      assert.deepEqual(got.map((t) => local(t, c.zone)), c.expect, `${spelling} in ${c.zone}`);
      assert.equal(new Set(got).size, got.length, `${spelling}: no instant fires twice`);
    }
  });
}

test('DST control: the same spellings in UTC fire at every listed time (the rule changes nothing without a transition)', () => {
  assert.deepEqual(fires('*/30 * * * *', 'UTC', '2026-11-01T04:00:00Z', '2026-11-01T06:00:00Z'),
    ['2026-11-01T04:30:00.000Z', '2026-11-01T05:00:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-01T06:00:00.000Z']);
  // The day after the fall-back, New York's */30 is back to a steady 30 minutes.
  const next = fires('*/30 * * * *', 'America/New_York', '2026-11-02T05:00:00Z', '2026-11-02T06:30:00Z');
  assert.deepEqual(next, ['2026-11-02T05:30:00.000Z', '2026-11-02T06:00:00.000Z', '2026-11-02T06:30:00.000Z']);
});

test('DST: asking from inside the repeated hour does not fire its local times again', () => {
  // 06:10Z is 01:10 EST, the second 01:10 of the night: 01:30 EST is a repeat, the next fire is 02:00 EST.
  assert.deepEqual(fires('*/30 * * * *', 'America/New_York', '2026-11-01T06:10:00Z', '2026-11-01T07:30:00Z'), ['2026-11-01T07:00:00.000Z', '2026-11-01T07:30:00.000Z']);
  // From inside the spring gap's shifted range (07:10Z = 03:10 EDT): 02:30 EST's shifted instant 03:30 EDT is next.
  assert.deepEqual(fires('30 2 * * *', 'America/New_York', '2026-03-08T07:10:00Z', '2026-03-08T08:00:00Z'), ['2026-03-08T07:30:00.000Z']);
});

/** Drives the scheduler's fire step with an injected clock: each call is "now" at the schedule's next fire time. */
async function fireThrough(t: TestContext, s: Stack, name: string, until: number): Promise<string[]> {
  const deps = fireDeps(t, s);
  const { schedules } = deps;
  for (let i = 0; i < 50; i++) {
    const rec = (await schedules.get(name)) as ScheduleRecord;
    if (!rec.nextRunAt || Date.parse(rec.nextRunAt) > until) break;
    await fireDueSchedules(deps, Date.parse(rec.nextRunAt), 60_000);
  }
  const runs = (await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/${name}/runs?limit=1000`)).body.items;
  return runs.map((j) => j.scheduledFor!).sort();
}

test('DST through the scheduler (injected clock): a star and a list fire the same times on the fall-back night', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  // 2027-11-07 is New York's next fall-back; startAt puts the first fire just before it without waiting a year.
  const window = { timezone: 'America/New_York', startAt: '2027-11-07T04:00:00Z', job: { command: 'true' } };
  const until = Date.parse('2027-11-07T08:30:00Z');
  const made: Record<string, string[]> = {};
  for (const [name, cron] of [['star', '*/30 * 7 11 *'], ['list', '0,30 0-3 7 11 *'], ['secs', '0 */30 * * * *']] as const) {
    const r = await s.request('POST', '/v1/schedules', { name, cron, ...window });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    made[name] = await fireThrough(t, s, name, until);
  }
  const expected = ['04:00', '04:30', '05:00', '05:30', '07:00', '07:30', '08:00', '08:30'].map((hm) => `2027-11-07T${hm}:00.000Z`);
  assert.deepEqual(made.star, expected);
  assert.deepEqual(made.list, expected);
  assert.deepEqual(made.secs, expected);
});
