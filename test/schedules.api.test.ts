import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord, ScheduleRecord } from '@drover/core';
import { startStack, brokerTest } from './helpers/stack.js';

type Sched = ScheduleRecord & { upcoming?: string[] };

test('schedules: create, read, list, update, enable/disable (one and batch), delete', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const created = await s.request<Sched>('POST', '/v1/schedules', {
    name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', job: { command: 'echo backup', retries: 2 }, description: 'backup',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.enabled, true);
  assert.equal(created.body.overlap, 'allow');
  assert.equal(created.body.misfire, 'run-once');
  const next = new Date(created.body.nextRunAt!);
  assert.equal(next.toLocaleString('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit' }), '03:00');
  assert.ok(next.getTime() > Date.now());

  const dup = await s.request<{ error: { code: string } }>('POST', '/v1/schedules', { name: 'nightly', cron: '* * * * *', job: { command: 'true' } });
  assert.equal(dup.status, 409);

  const one = await s.request<Sched>('GET', '/v1/schedules/nightly');
  assert.equal(one.body.upcoming?.length, 5);
  assert.equal(one.body.consecutiveFailures, 0);
  assert.equal(one.body.lastRunAt, null);

  const updated = await s.request<Sched>('PUT', '/v1/schedules/nightly', { cron: '*/5 * * * * *', timezone: 'UTC' });
  assert.equal(updated.status, 200);
  assert.equal(updated.body.cron, '*/5 * * * * *');
  assert.equal(updated.body.description, 'backup', 'fields not given are kept');
  assert.ok(Date.parse(updated.body.nextRunAt!) - Date.now() <= 5000, 'next fire recomputed');

  await s.request('POST', '/v1/schedules', { name: 'b', cron: '@hourly', job: { argv: ['true'] } });
  await s.request('POST', '/v1/schedules', { name: 'c', cron: '@daily', job: { argv: ['true'] }, enabled: false });
  const off = await s.request<{ items: Sched[] }>('POST', '/v1/schedules/disable', { names: ['nightly', 'b'] });
  assert.equal(off.status, 200);
  assert.deepEqual(off.body.items.map((x) => [x.name, x.enabled, x.nextRunAt]), [['nightly', false, null], ['b', false, null]]);
  const partial = await s.request<{ error: { code: string } }>('POST', '/v1/schedules/enable', { names: ['b', 'ghost'] });
  assert.equal(partial.status, 404, 'all or nothing');
  assert.equal((await s.request<Sched>('GET', '/v1/schedules/b')).body.enabled, false);
  const on = await s.request<Sched>('POST', '/v1/schedules/c/enable');
  assert.equal(on.body.enabled, true);
  assert.ok(on.body.nextRunAt);

  const page1 = await s.request<{ items: Sched[]; nextCursor: string | null }>('GET', '/v1/schedules?limit=2');
  assert.deepEqual(page1.body.items.map((x) => x.name), ['b', 'c']);
  const page2 = await s.request<{ items: Sched[]; nextCursor: string | null }>('GET', `/v1/schedules?limit=2&cursor=${page1.body.nextCursor}`);
  assert.deepEqual(page2.body.items.map((x) => x.name), ['nightly']);
  assert.equal(page2.body.nextCursor, null);

  const del = await s.request<{ deleted: string; interrupted: string[] }>('DELETE', '/v1/schedules/b');
  assert.deepEqual(del.body, { deleted: 'b', interrupted: [] });
  assert.equal((await s.request('GET', '/v1/schedules/b')).status, 404);
});

brokerTest('trigger runs the job now with env and args overrides; runs lists it; delete ?kill=1 interrupts running jobs', async (t, broker) => {
  const s = await startStack(t, { broker });
  await s.request('POST', '/v1/schedules', { name: 'greet', cron: '0 0 1 1 *', job: { command: 'echo "$GREETING $1"; sleep "${2:-0}"', env: { GREETING: 'hello' } } });
  const run = await s.request<JobRecord>('POST', '/v1/schedules/greet/trigger', { env: { GREETING: 'hi' }, args: ['there'] });
  assert.equal(run.status, 201, JSON.stringify(run.body));
  assert.equal(run.body.schedule, 'greet');
  const done = await s.waitFor(run.body.id);
  assert.equal(done.status, 'succeeded');
  const logs = await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${done.id}/logs`);
  assert.deepEqual(logs.body.items.map((l) => l.line), ['hi there']);
  const sched = await s.request<Sched>('GET', '/v1/schedules/greet');
  assert.equal(sched.body.lastState, 'succeeded');
  assert.equal(sched.body.lastJobId, done.id);
  assert.ok(sched.body.lastDurationMs !== null && sched.body.lastDurationMs >= 0);

  const delayed = await s.request<JobRecord>('POST', '/v1/schedules/greet/trigger', { delayMs: 60_000 });
  assert.equal(delayed.body.status, 'delayed');
  const long = await s.request<JobRecord>('POST', '/v1/schedules/greet/trigger', { args: ['x', '30'] });
  await s.waitFor(long.body.id, (j) => j.status === 'running' && j.pid !== null);

  const runs = await s.request<{ items: JobRecord[]; nextCursor: string | null }>('GET', '/v1/schedules/greet/runs?limit=2');
  assert.deepEqual(runs.body.items.map((j) => j.id), [long.body.id, delayed.body.id]);
  const rest = await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/greet/runs?cursor=${runs.body.nextCursor}`);
  assert.deepEqual(rest.body.items.map((j) => j.id), [done.id]);

  const del = await s.request<{ interrupted: string[] }>('DELETE', '/v1/schedules/greet?kill=1');
  assert.equal(del.status, 200);
  assert.deepEqual(del.body.interrupted, [delayed.body.id, long.body.id].sort());
  assert.equal((await s.waitFor(long.body.id)).status, 'cancelled');
  assert.equal((await s.waitFor(delayed.body.id)).status, 'cancelled');
});

test('bad schedules are refused and nothing is stored', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [Record<string, unknown>, string][] = [
    [{ name: 'x', cron: '61 * * * *', job: { command: 'true' } }, 'cron'],
    [{ name: 'x', cron: '* * * *', job: { command: 'true' } }, 'cron'],
    [{ name: 'x', cron: '* * * * *', timezone: 'Mars/Olympus', job: { command: 'true' } }, 'timezone'],
    [{ name: 'x', cron: '* * * * *', job: {} }, 'job/command'],
    [{ name: 'x', cron: '* * * * *', job: { command: 'true', delayMs: 5 } }, 'delayMs'],
    [{ name: 'bad name!', cron: '* * * * *', job: { command: 'true' } }, 'name'],
    [{ name: 'x', cron: '* * * * *', job: { command: 'true' }, overlap: 'sometimes' }, 'overlap'],
    [{ name: 'x', job: { command: 'true' } }, 'cron'],
  ];
  for (const [body, field] of cases) {
    const res = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/schedules', body);
    assert.equal(res.status, 400, `${JSON.stringify(body)} -> ${JSON.stringify(res.body)}`);
    assert.ok(res.body.error.message.includes(field), `"${res.body.error.message}" names ${field}`);
  }
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/schedules')).body.items.length, 0);
  assert.equal((await s.request('GET', '/v1/schedules/ghost')).status, 404);
  assert.equal((await s.request('PUT', '/v1/schedules/ghost', { cron: '* * * * *' })).status, 404);
  assert.equal((await s.request('POST', '/v1/schedules/ghost/trigger', {})).status, 404);
  assert.equal((await s.request('DELETE', '/v1/schedules/ghost')).status, 404);
  await s.request('POST', '/v1/schedules', { name: 'ok', cron: '* * * * *', job: { command: 'true' } });
  const badUpdate = await s.request<{ error: { message: string } }>('PUT', '/v1/schedules/ok', { timezone: 'Nowhere/Land' });
  assert.equal(badUpdate.status, 400);
  assert.equal((await s.request<Sched>('GET', '/v1/schedules/ok')).body.timezone, 'UTC', 'unchanged');
  const tooLate = await s.request('POST', '/v1/schedules/ok/trigger', { delayMs: 10 ** 12 });
  assert.equal(tooLate.status, 400);
});
