import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startStack } from './helpers/stack.js';

type ErrorBody = { error: { code: string; message: string; details?: { field: string; message: string }[] } };

test('validation messages name the allowed values, the batch item, and what a date-time needs', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const wf = await s.request<{ id: string }>('POST', '/v1/workflows', { name: 'w', steps: [{ name: 'a', job: { command: 'true' } }] });
  const cases: [string, string, unknown, RegExp][] = [
    ['POST', `/v1/workflows/${wf.body.id}/restart`, { mode: 'everything' }, /^body\/mode: must be one of whole, failed$/],
    ['POST', `/v1/workflows/${wf.body.id}/restart`, {}, /^body: must be one of \{mode: "whole" \| "failed"\} or \{steps: \[\.\.\.\]\}$/],
    ['POST', '/v1/jobs', { command: 'true', onLost: 'forget' }, /^body\/onLost: must be one of retry, discard$/],
    ['POST', '/v1/jobs', { command: 'true', backoff: { type: 'linear', delayMs: 5 } }, /^body\/backoff\/type: must be one of fixed, exponential$/],
    ['POST', '/v1/jobs', { command: 'true', runAt: 'tomorrow 9am' }, /^body\/runAt: must be an ISO time with an offset, e\.g\. 2027-01-01T09:00:00\+01:00/],
    ['POST', '/v1/jobs/batch', { jobs: [{ command: 'true' }, { command: 'true', onLost: 'x' }] }, /^body\/jobs\/1\/onLost: must be one of retry, discard$/],
  ];
  for (const [method, path, body, want] of cases) {
    const r = await s.request<ErrorBody>(method, path, body);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
    assert.equal(r.body.error.code, 'VALIDATION');
    assert.match(r.body.error.message, want, `${path} ${JSON.stringify(body)}`);
    assert.equal(r.body.error.details?.length, 1, `one problem, one message: ${r.body.error.message}`);
  }
  // Two real problems are still two.
  const two = await s.request<ErrorBody>('POST', '/v1/jobs', { command: 'true', onLost: 'x', timeoutMs: 'soon' });
  assert.deepEqual(two.body.error.details?.map((d) => d.field).sort(), ['body/onLost', 'body/timeoutMs']);
  const stored = (await s.request<{ items: { labels: Record<string, string> }[] }>('GET', '/v1/jobs?queue=default')).body.items;
  assert.deepEqual(stored.map((j) => j.labels['drover.step']), ['a'], 'nothing was stored but the workflow\'s step');
});

test('an empty body labelled JSON on an action without a body is accepted; a route that needs a body still says so', async (t) => {
  const s = await startStack(t, { scheduler: false });
  const send = (method: string, path: string) => fetch(`${s.url}${path}`, { method, headers: { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json' }, body: '' });
  assert.equal((await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: 'true' } })).status, 201);
  assert.equal((await send('POST', '/v1/schedules/nightly/disable')).status, 200);
  assert.equal((await s.request<{ enabled: boolean }>('GET', '/v1/schedules/nightly')).body.enabled, false, 'and it is disabled');
  assert.equal((await send('POST', '/v1/schedules/nightly/trigger')).status, 201);
  const delayed = await s.submit({ command: 'true', delayMs: 600_000 });
  assert.equal((await send('POST', `/v1/jobs/${delayed.id}/cancel`)).status, 200);
  assert.equal((await s.request<{ status: string }>('GET', `/v1/jobs/${delayed.id}`)).body.status, 'cancelled');
  assert.equal((await send('POST', '/v1/queues/default/pause')).status, 200);
  assert.equal((await send('POST', '/v1/queues/default/resume')).status, 200);
  assert.equal((await send('POST', `/v1/runners/${s.runner!.id}/drain?force=1`)).status, 200);
  assert.equal((await send('POST', `/v1/runners/${s.runner!.id}/resume`)).status, 200);
  const needs = await send('POST', '/v1/jobs');
  assert.equal(needs.status, 400, 'the control: a submission without a body');
  assert.equal(((await needs.json()) as ErrorBody).error.code, 'VALIDATION');
  const bad = await fetch(`${s.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json' }, body: '{"command":' });
  assert.equal(((await bad.json()) as ErrorBody).error.code, 'INVALID_JSON', 'broken JSON is still broken JSON');
  const poisoned = await fetch(`${s.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json' }, body: '{"command":"true","__proto__":{"x":1}}' });
  assert.equal(poisoned.status, 400, 'prototype poisoning is still refused');
});

test('pausing a queue not used before creates it paused; resuming one that does not exist is 404', async (t) => {
  const s = await startStack(t, { scheduler: false, env: { RUNNER_QUEUES: '*', RUNNER_QUEUE_SCAN_MS: '100' } });
  const paused = await s.request<{ name: string; settings: { paused: boolean } }>('POST', '/v1/queues/later/pause');
  assert.equal(paused.status, 200);
  assert.equal(paused.body.settings.paused, true);
  const job = await s.submit({ queue: 'later', command: 'true' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await s.request<{ status: string }>('GET', `/v1/jobs/${job.id}`)).body.status, 'queued', 'its first job waits');
  assert.equal((await s.request('POST', '/v1/queues/never-used/resume')).status, 404);
  assert.equal((await s.request('POST', '/v1/queues/later/resume')).status, 200);
  assert.equal((await s.waitFor(job.id)).status, 'succeeded');
});
