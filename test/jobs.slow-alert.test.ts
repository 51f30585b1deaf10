import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DroverEvent, JobRecord } from '@drover/core';
import { metricValue, scrape } from './helpers/prom.js';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';

type Slow = JobRecord & { alertAfterMs: number | null; slowAt: string | null };

async function slowEvents(s: Stack, jobId: string): Promise<DroverEvent[]> {
  const page = await s.request<{ items: DroverEvent[] }>('GET', `/v1/events?types=job.slow&job=${jobId}&limit=100`);
  assert.equal(page.status, 200);
  return page.body.items;
}

brokerTest('alertAfterMs: a job running past it gets job.slow and slowAt and keeps running to its own end', async (t, broker) => {
  const s = await startStack(t, { broker });
  const job = await s.submit({ command: 'sleep 1.2; echo done', alertAfterMs: 300 });
  const done = (await s.waitFor(job.id)) as Slow;
  assert.equal(done.status, 'succeeded', 'a warning, not a kill');
  assert.equal(done.alertAfterMs, 300);
  assert.ok(done.slowAt, 'the record says when the alert fired');
  const slowAt = Date.parse(done.slowAt);
  assert.ok(slowAt >= Date.parse(done.startedAt!) + 300, `slowAt ${done.slowAt} is at least alertAfterMs after startedAt ${done.startedAt}`);
  assert.ok(slowAt <= Date.parse(done.finishedAt!), 'and before the job ended');
  const events = await slowEvents(s, job.id);
  assert.equal(events.length, 1, 'once per attempt');
  assert.equal(events[0]!.queue, 'default');
  assert.equal(events[0]!.data.attempt, 1);
  assert.equal(events[0]!.data.alertAfterMs, 300);
  assert.equal(events[0]!.data.runnerId, s.runner!.id);
  assert.ok(Number(events[0]!.data.runningMs) >= 300);
  assert.equal(metricValue(await scrape(`${s.url}/metrics`, s.tokens.read), 'drover_jobs_slow_total', { queue: 'default' }), 1);
});

test('alertAfterMs: a job that ends first gets no alert; each slow attempt of a retried job gets its own', async (t) => {
  const s = await startStack(t);
  const quick = await s.run({ command: 'true', alertAfterMs: 200 });
  // The control for the first test: a slow job sleeping beside it is alerted, the quick one is not (its timer was
  // cleared when it ended).
  const slow = await s.run({ command: 'sleep 0.6', alertAfterMs: 200 });
  assert.equal((await slowEvents(s, slow.id)).length, 1);
  assert.deepEqual(await slowEvents(s, quick.id), []);
  assert.equal((quick as Slow).slowAt, null);

  const retried = await s.run({ command: 'sleep 0.5; exit 3', alertAfterMs: 150, retries: 1, backoff: { type: 'fixed', delayMs: 10 } });
  assert.equal(retried.status, 'failed');
  assert.equal(retried.attempts, 2);
  assert.deepEqual((await slowEvents(s, retried.id)).map((e) => e.data.attempt), [1, 2]);
});

test('alertAfterMs: bad values are refused with nothing stored; schedules pass it to their jobs', async (t) => {
  const s = await startStack(t);
  for (const alertAfterMs of [0, -5, 1.5, 'soon', 400 * 86_400_000]) {
    const r = await s.request<{ error: { code: string; details: { field: string }[] } }>('POST', '/v1/jobs', { command: 'true', alertAfterMs });
    assert.equal(r.status, 400, `alertAfterMs ${String(alertAfterMs)}`);
    assert.equal(r.body.error.code, 'VALIDATION');
    assert.match(JSON.stringify(r.body.error.details), /alertAfterMs/);
  }
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs?queue=default')).body.items.length, 0, 'nothing was stored');

  assert.equal((await s.request('POST', '/v1/schedules', { name: 'watched', cron: '0 3 * * *', job: { command: 'sleep 0.4', alertAfterMs: 100 } })).status, 201);
  const fired = await s.request<Slow>('POST', '/v1/schedules/watched/trigger');
  assert.equal(fired.status, 201);
  assert.equal(fired.body.alertAfterMs, 100);
  const done = (await s.waitFor(fired.body.id)) as Slow;
  assert.equal(done.status, 'succeeded');
  assert.equal((await slowEvents(s, done.id)).length, 1);
});
