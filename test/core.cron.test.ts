import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextFireTimes, validateCron } from '@drover/core';

const fires = (cron: string, tz: string, from: string, n: number): string[] =>
  nextFireTimes(cron, tz, Date.parse(from), n).map((t) => new Date(t).toISOString());
const local = (iso: string, tz: string): string => {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: tz, hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' }).formatToParts(new Date(iso));
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('hour')}:${get('minute')} ${get('timeZoneName')}`;
};

test('Europe/Berlin: a daily 02:30 across spring-forward shifts once; across fall-back fires once', () => {
  // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
  assert.deepEqual(fires('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', 3), [
    '2026-03-28T01:30:00.000Z', // 02:30 CET
    '2026-03-29T01:30:00.000Z', // 03:30 CEST, the skipped 02:30 moved forward
    '2026-03-30T00:30:00.000Z', // 02:30 CEST
  ]);
  // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, fires once.
  assert.deepEqual(fires('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', 3), [
    '2026-10-24T00:30:00.000Z',
    '2026-10-25T00:30:00.000Z',
    '2026-10-26T01:30:00.000Z',
  ]);
  // 09:00 stays 09:00 local through the change; the UTC instant moves.
  const nine = fires('0 9 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', 2);
  assert.deepEqual(nine.map((t) => local(t, 'Europe/Berlin')), ['09:00 GMT+1', '09:00 GMT+2']);
});

test('America/New_York: 09:00 daily keeps local time across both changes; 01:30 on fall-back day fires once', () => {
  assert.deepEqual(fires('0 9 * * *', 'America/New_York', '2026-03-07T00:00:00Z', 2), ['2026-03-07T14:00:00.000Z', '2026-03-08T13:00:00.000Z']);
  assert.deepEqual(fires('0 9 * * *', 'America/New_York', '2026-10-31T00:00:00Z', 2), ['2026-10-31T13:00:00.000Z', '2026-11-01T14:00:00.000Z']);
  assert.deepEqual(fires('30 1 * * *', 'America/New_York', '2026-11-01T00:00:00Z', 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  // Hourly keeps a steady UTC rhythm through the spring gap (no duplicate, no hole).
  const hourly = fires('0 * * * *', 'America/New_York', '2026-03-08T05:30:00Z', 4);
  assert.deepEqual(hourly, ['2026-03-08T06:00:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-08T08:00:00.000Z', '2026-03-08T09:00:00.000Z']);
});

test('6-field seconds, macros, and refusals', () => {
  assert.deepEqual(fires('*/20 * * * * *', 'UTC', '2026-01-01T00:00:00Z', 3), ['2026-01-01T00:00:20.000Z', '2026-01-01T00:00:40.000Z', '2026-01-01T00:01:00.000Z']);
  assert.deepEqual(fires('@hourly', 'UTC', '2026-01-01T00:00:00Z', 1), ['2026-01-01T01:00:00.000Z']);
  assert.deepEqual(fires('@weekly', 'UTC', '2026-01-01T00:00:00Z', 1), ['2026-01-04T00:00:00.000Z']);
  assert.throws(() => validateCron('61 * * * *', 'UTC'));
  assert.throws(() => validateCron('* * *', 'UTC'), /5 fields/);
  assert.throws(() => validateCron('* * * * *', 'Europe/Atlantis'), /time zone/);
});
