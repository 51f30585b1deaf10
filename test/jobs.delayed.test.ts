import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack, brokerTest } from './helpers/stack.js';

brokerTest('delayMs and runAt: the job waits as delayed, shows runAt, then runs once when due', async (t, broker) => {
  const s = await startStack(t, { broker });
  const before = Date.now();
  const a = await s.submit({ command: 'echo a', delayMs: 1500 });
  assert.equal(a.status, 'delayed');
  assert.ok(Date.parse(a.runAt!) >= before + 1500);
  const at = new Date(Date.now() + 1800);
  // An offset other than Z: the same instant written in +02:00.
  const local = new Date(at.getTime() + 2 * 3600_000).toISOString().replace('Z', '+02:00');
  const b = await s.submit({ command: 'echo b', runAt: local });
  assert.equal(b.status, 'delayed');
  assert.equal(Date.parse(b.runAt!), at.getTime());

  const listed = await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?status=delayed');
  assert.deepEqual(listed.body.items.map((j) => j.id).sort(), [a.id, b.id].sort());
  assert.ok(listed.body.items.every((j) => j.runAt !== null));

  const [da, db] = [await s.waitFor(a.id), await s.waitFor(b.id)];
  for (const j of [da, db]) {
    assert.equal(j.status, 'succeeded');
    assert.equal(j.attempts, 1);
    assert.ok(Date.parse(j.startedAt!) >= Date.parse(j.runAt!), 'never before its time');
  }
});

brokerTest('a cancelled delayed job never runs; a runAt in the past runs at once', async (t, broker) => {
  const s = await startStack(t, { broker });
  const delayed = await s.submit({ command: 'echo never', delayMs: 300 });
  const res = await s.request<JobRecord>('POST', `/v1/jobs/${delayed.id}/cancel`);
  assert.equal(res.body.status, 'cancelled');
  const past = await s.submit({ command: 'true', runAt: new Date(Date.now() - 60_000).toISOString() });
  assert.equal(past.status, 'queued');
  assert.equal((await s.waitFor(past.id)).status, 'succeeded');
  await new Promise((r) => setTimeout(r, 500));
  const after = await s.waitFor(delayed.id);
  assert.equal(after.status, 'cancelled');
  assert.equal(after.attempts, 0);
});

test('bad delays: both given, unparseable or offset-less runAt, beyond the maximum', async (t) => {
  const s = await startStack(t, { runner: false, env: { DROVER_MAX_DELAY_MS: '60000' } });
  const cases: [Record<string, unknown>, string][] = [
    [{ command: 'true', delayMs: 10, runAt: new Date().toISOString() }, 'runAt'],
    [{ command: 'true', runAt: 'tomorrow at nine' }, 'runAt'],
    [{ command: 'true', runAt: '2030-01-01T09:00:00' }, 'runAt'],
    [{ command: 'true', delayMs: -1 }, 'delayMs'],
    [{ command: 'true', delayMs: 60_001 }, 'delayMs'],
    [{ command: 'true', runAt: new Date(Date.now() + 3_600_000).toISOString() }, 'runAt'],
  ];
  for (const [body, field] of cases) {
    const res = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.ok(res.body.error.message.includes(field), `${res.body.error.message} names ${field}`);
  }
  const list = await s.request<{ items: unknown[] }>('GET', '/v1/jobs');
  assert.equal(list.body.items.length, 0, 'nothing stored');
});
