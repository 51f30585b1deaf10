import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack } from './helpers/stack.js';

test('whoami tells each token its scope; unauthenticated gets 401', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  for (const scope of ['read', 'submit', 'admin'] as const) {
    const r = await s.request<{ name: string; scope: string }>('GET', '/v1/whoami', undefined, s.tokens[scope]);
    assert.equal(r.status, 200);
    assert.equal(r.body.scope, scope);
  }
  assert.equal((await s.request('GET', '/v1/whoami', undefined, null)).status, 401);
});

test('retry runs a finished job again as a new job; an unfinished one gets 409 and nothing is created', async (t) => {
  const s = await startStack(t);
  const first = await s.run({ command: 'echo again; exit 4', labels: { team: 'a' }, env: { K: 'v' } });
  assert.equal(first.status, 'failed');
  const r = await s.request<JobRecord>('POST', `/v1/jobs/${first.id}/retry`, undefined, s.tokens.submit);
  assert.equal(r.status, 201);
  assert.notEqual(r.body.id, first.id);
  assert.equal(r.body.command, first.command);
  assert.deepEqual(r.body.labels, { team: 'a', 'drover.retryOf': first.id });
  const again = await s.waitFor(r.body.id);
  assert.equal(again.exitCode, 4, JSON.stringify(again));

  const running = await s.submit({ command: 'sleep 10' });
  await s.waitFor(running.id, (j) => j.status === 'running');
  const before = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?limit=100')).body.items.length;
  const conflict = await s.request<{ error: { code: string } }>('POST', `/v1/jobs/${running.id}/retry`);
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error.code, 'CONFLICT');
  assert.equal((await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?limit=100')).body.items.length, before);
  assert.equal((await s.request('POST', `/v1/jobs/${running.id}/cancel`)).status, 200);
  assert.equal((await s.request('POST', `/v1/jobs/${first.id}/retry`, undefined, s.tokens.read)).status, 403);
  assert.equal((await s.request('POST', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry')).status, 404);
});

test('cron preview lists the next fire times in the time zone, and explains an invalid expression', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const ok = await s.request<{ next: string[] }>('GET', `/v1/cron/preview?cron=${encodeURIComponent('30 4 * * *')}&timezone=Asia/Tokyo`, undefined, s.tokens.read);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.next.length, 5);
  for (const iso of ok.body.next) assert.equal(new Date(iso).getUTCHours(), 19, iso); // 04:30 in Tokyo is 19:30 UTC
  const three = await s.request<{ next: string[] }>('GET', '/v1/cron/preview?cron=@hourly&count=3');
  assert.equal(three.body.next.length, 3);
  const bad = await s.request<{ error: { code: string; message: string } }>('GET', `/v1/cron/preview?cron=${encodeURIComponent('61 * * * *')}`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'VALIDATION');
  const tz = await s.request<{ error: { message: string; details: { field: string }[] } }>('GET', '/v1/cron/preview?cron=@daily&timezone=Mars/Olympus');
  assert.equal(tz.status, 400);
  assert.match(tz.body.error.message, /time zone/);
  assert.equal(tz.body.error.details[0]!.field, 'querystring/timezone');
});
