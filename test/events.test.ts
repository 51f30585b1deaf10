import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareEventIds, type DroverEvent } from '@drover/core';
import { connectSse, type SseClient } from './helpers/sse.js';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

async function frames(client: SseClient, until: (e: DroverEvent) => boolean): Promise<DroverEvent[]> {
  const out: DroverEvent[] = [];
  for (;;) {
    const f = await client.next();
    assert.ok(f, `the stream ended or went quiet after ${out.map((e) => e.type).join(',')}`);
    if (f.event === 'gap') continue;
    const e = JSON.parse(f.data) as DroverEvent;
    assert.equal(f.id, e.id);
    assert.equal(f.event, e.type);
    out.push(e);
    if (until(e)) return out;
  }
}

/** Every stored event after `after`, through the JSON pages: what a resumed stream must reproduce. */
async function stored(s: Stack, after: string, query = ''): Promise<DroverEvent[]> {
  const out: DroverEvent[] = [];
  for (let cursor = after; ; ) {
    const page = (await s.request<{ items: DroverEvent[]; nextCursor: string }>('GET', `/v1/events?after=${cursor}&limit=1000${query}`)).body;
    out.push(...page.items);
    if (page.nextCursor === cursor) return out;
    cursor = page.nextCursor;
  }
}

brokerTest('SSE events: a job\'s lifecycle in order; a retry; resume with Last-Event-ID without gaps or repeats', async (t, broker) => {
  const s = await startStack(t, { broker });
  const auth = { authorization: `Bearer ${s.tokens.read}` };
  const first = await connectSse(`${s.url}/v1/events?types=job.*`, auth);
  t.after(() => first.close());
  assert.equal(first.status, 200);
  const job = await s.submit({ command: 'exit 1', retries: 1, backoff: { type: 'fixed', delayMs: 10 } });
  const seen = await frames(first, (e) => e.jobId === job.id && e.type === 'job.failed');
  const mine = seen.filter((e) => e.jobId === job.id);
  assert.deepEqual(mine.map((e) => e.type), ['job.submitted', 'job.started', 'job.retried', 'job.started', 'job.failed']);
  assert.deepEqual(mine.map((e) => e.data.attempt ?? null), [null, 1, 1, 2, 2]);
  assert.equal(mine[4]!.data.exitCode, 1);
  assert.equal(mine[0]!.queue, 'default');
  for (let i = 1; i < seen.length; i++) assert.ok(compareEventIds(seen[i]!.id, seen[i - 1]!.id) > 0, 'ids increase');

  // Disconnect, let more happen, resume from the last id seen.
  const lastSeen = seen[seen.length - 1]!.id;
  first.close();
  const later = await Promise.all([1, 2, 3, 4, 5].map(() => s.submit({ command: 'true' })));
  for (const j of later) await s.waitFor(j.id);
  const resumed = await connectSse(`${s.url}/v1/events?types=job.*`, { ...auth, 'last-event-id': lastSeen });
  t.after(() => resumed.close());
  const expected = (await stored(s, lastSeen, '&types=job.*'));
  assert.equal(expected.length, 15, 'five jobs, three events each');
  const got = await frames(resumed, (e) => e.id === expected[expected.length - 1]!.id);
  assert.deepEqual(got.map((e) => e.id), expected.map((e) => e.id), 'exactly the events after Last-Event-ID, in order');
  // And it goes on live.
  const live = await s.submit({ command: 'true' });
  const more = await frames(resumed, (e) => e.jobId === live.id && e.type === 'job.succeeded');
  assert.deepEqual(more.map((e) => e.type), ['job.submitted', 'job.started', 'job.succeeded']);
});

test('events: filters by job and queue; JSON pages; bad cursors are 400; tokens limited to queues see only theirs', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'default,other' } });
  const a = await s.run({ command: 'true' });
  const b = await s.run({ command: 'true', queue: 'other' });
  const byJob = await stored(s, '0-0', `&job=${a.id}`);
  assert.deepEqual(byJob.map((e) => e.type), ['job.submitted', 'job.started', 'job.succeeded']);
  const byQueue = await stored(s, '0-0', '&queue=other&types=job.succeeded');
  assert.deepEqual(byQueue.map((e) => e.jobId), [b.id]);
  for (const q of ['after=zzz', 'job=nope', 'limit=0']) assert.equal((await s.request('GET', `/v1/events?${q}`)).status, 400, q);
  const stream = await connectSse(`${s.url}/v1/events`, { authorization: `Bearer ${s.tokens.read}`, 'last-event-id': 'bogus' });
  assert.equal(stream.status, 400);
  stream.close();
  s.registry.add('scoped-token-of-length-32-chars!', { name: 'scoped', scope: 'read', queues: ['other'] });
  const scoped = await s.request<{ items: { queue: string }[] }>('GET', '/v1/events?after=0-0', undefined, 'scoped-token-of-length-32-chars!');
  assert.ok(scoped.body.items.length > 0);
  assert.ok(scoped.body.items.every((e) => e.queue === 'other'));
});

test('logs?follow=1: lines arrive live as SSE, then an end event; Last-Event-ID resumes after a line', async (t) => {
  const s = await startStack(t);
  const auth = { authorization: `Bearer ${s.tokens.read}` };
  const job = await s.submit({ command: 'for i in 1 2 3; do echo line$i; sleep 0.2; done; echo bye >&2' });
  const follow = await connectSse(`${s.url}/v1/jobs/${job.id}/logs?follow=1`, auth);
  t.after(() => follow.close());
  const got: { id?: string; event?: string; data: { line?: string; stream?: string; status?: string } }[] = [];
  for (let f = await follow.next(); f; f = await follow.next()) {
    got.push({ ...(f.id ? { id: f.id } : {}), ...(f.event ? { event: f.event } : {}), data: JSON.parse(f.data) as { line?: string } });
    if (f.event === 'end') break;
  }
  assert.deepEqual(got.map((g) => (g.event === 'line' ? `${g.data.stream}:${g.data.line}` : `${g.event}:${g.data.status}`)), [
    'stdout:line1', 'stdout:line2', 'stdout:line3', 'stderr:bye', 'end:succeeded',
  ]);
  assert.deepEqual(got.at(-1)!.data, { status: 'succeeded', exitCode: 0, signal: null, error: null, truncated: false }, 'end carries the outcome');
  assert.equal(await follow.next(1000), undefined, 'the stream closes after end');
  const resumed = await connectSse(`${s.url}/v1/jobs/${job.id}/logs?follow=1`, { ...auth, 'last-event-id': got[0]!.id! });
  t.after(() => resumed.close());
  const rest: string[] = [];
  for (let f = await resumed.next(); f; f = await resumed.next()) rest.push(f.event === 'line' ? (JSON.parse(f.data) as { line: string }).line : f.event!);
  assert.deepEqual(rest, ['line2', 'line3', 'bye', 'end']);
  // Without the SSE Accept header, follow=1 answers the plain page.
  assert.equal((await s.request<{ items: unknown[] }>('GET', `/v1/jobs/${job.id}/logs?follow=1`)).body.items.length, 4);
});

test('schedule alerts: schedule.failing once after N failures in a row, schedule.recovered after the next success', async (t) => {
  const s = await startStack(t);
  await s.request('POST', '/v1/schedules', { name: 'flaky', cron: '* * * * * *', job: { command: 'exit 1' }, alertAfterFailures: 2, overlap: 'skip' });
  const alerts = async (): Promise<{ type: string; data: { consecutiveFailures?: number } }[]> =>
    (await s.request<{ items: { type: string; data: { consecutiveFailures?: number } }[] }>('GET', '/v1/events?after=0-0&types=schedule.failing,schedule.recovered&limit=1000')).body.items;
  const alertsWhen = (what: string, ok: (a: Awaited<ReturnType<typeof alerts>>) => boolean) =>
    until(what, async () => {
      const a = await alerts();
      return ok(a) && a;
    }, 20_000, 100);
  await alertsWhen('schedule.failing', (a) => a.length > 0);
  // Two more failures: still one alert.
  const runs = async (): Promise<number> => (await s.request<{ consecutiveFailures: number }>('GET', '/v1/schedules/flaky')).body.consecutiveFailures;
  await until('four failures in a row', async () => (await runs()) >= 4, 20_000, 100);
  assert.deepEqual((await alerts()).map((x) => x.type), ['schedule.failing']);
  assert.equal((await alerts())[0]!.data.consecutiveFailures, 2);
  await s.request('PUT', '/v1/schedules/flaky', { job: { command: 'true' } });
  const all = await alertsWhen('schedule.recovered', (a) => a.some((x) => x.type === 'schedule.recovered'));
  assert.deepEqual(all.map((x) => x.type), ['schedule.failing', 'schedule.recovered']);
  await s.request('POST', '/v1/schedules/flaky/disable');
});
