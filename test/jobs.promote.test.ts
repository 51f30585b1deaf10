import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DroverEvent, JobRecord } from '@drover/core';
import { cli, cliEnv, type CliResult } from './helpers/cli.js';
import { brokerTest, startStack } from './helpers/stack.js';

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r;
}

interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

brokerTest('promote starts a delayed job now; a job that is not delayed is 409; unknown or another queue\'s is 404', async (t, broker) => {
  const s = await startStack(t, { broker });
  const later = await s.submit({ command: 'echo promoted', delayMs: 600_000 });
  // Control: a delayed job nobody promotes stays delayed the whole test.
  const control = await s.submit({ command: 'echo control', delayMs: 600_000 });
  assert.equal(later.status, 'delayed');

  const res = await s.request<JobRecord>('POST', `/v1/jobs/${later.id}/promote`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.id, later.id);
  assert.ok(['queued', 'running', 'succeeded'].includes(res.body.status), res.body.status);
  const done = await s.waitFor(later.id);
  assert.equal(done.status, 'succeeded');
  assert.ok(Date.parse(done.startedAt!) < Date.parse(later.runAt!), 'it ran long before its runAt');
  const logs = await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${later.id}/logs`);
  assert.deepEqual(logs.body.items.map((l) => l.line), ['promoted']);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${control.id}`)).body.status, 'delayed', 'the control still waits');

  // An empty JSON body is the same as none.
  const other = await s.submit({ command: 'true', delayMs: 600_000 });
  const withBody = await s.request<JobRecord>('POST', `/v1/jobs/${other.id}/promote`, {});
  assert.equal(withBody.status, 200, JSON.stringify(withBody.body));
  assert.equal((await s.waitFor(other.id)).status, 'succeeded');

  // Not delayed (any more): 409, nothing changes.
  const again = await s.request<ErrorBody>('POST', `/v1/jobs/${later.id}/promote`);
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'CONFLICT');
  assert.match(again.body.error.message, /succeeded: only a delayed job can be promoted/);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${later.id}`)).body.attempts, 1);

  assert.equal((await s.request<ErrorBody>('POST', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/promote')).status, 404);
  assert.equal((await s.request<ErrorBody>('POST', '/v1/jobs/not-an-id/promote')).status, 400);

  // Queue-scoped: a token of another queue gets the 404 an unknown job gets, and the job stays delayed.
  const restricted = 'restricted-token-for-promote';
  s.registry.add(restricted, { name: 'restricted', scope: 'submit', queues: ['elsewhere'] });
  const hidden = await s.request<ErrorBody>('POST', `/v1/jobs/${control.id}/promote`, undefined, restricted);
  assert.equal(hidden.status, 404);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${control.id}`)).body.status, 'delayed');
  assert.equal((await s.request('POST', `/v1/jobs/${control.id}/promote`, undefined, s.tokens.read)).status, 403, 'read scope cannot');

  const events = await s.request<{ items: DroverEvent[] }>('GET', '/v1/events?after=0-0&types=job.started&limit=1000');
  assert.ok(events.body.items.some((e) => e.jobId === later.id), 'it started as any job does');
});

brokerTest('promote a retry waiting out its backoff: the next attempt starts now', async (t, broker) => {
  const s = await startStack(t, { broker });
  const job = await s.submit({ command: 'exit 3', retries: 1, backoff: { type: 'fixed', delayMs: 600_000 } });
  const waiting = await s.waitFor(job.id, (j) => j.status === 'delayed' && j.attempts === 1);
  assert.equal(waiting.failureCount, 1);
  assert.equal((await s.request('POST', `/v1/jobs/${job.id}/promote`)).status, 200);
  const done = await s.waitFor(job.id);
  assert.equal(done.status, 'failed');
  assert.equal(done.attempts, 2, 'the second attempt ran without waiting out its backoff');
});

test('CLI: drover submit --priority --ttl, and drover promote', async (t) => {
  const s = await startStack(t, { runner: false });
  const env = cliEnv(t, s.url, s.tokens.admin);
  const id = ok(await cli(t, env, 'submit', '--delay', '10m', '--priority', '9', '--ttl', '1h', '--', 'true')).stdout.trim();
  const job = (await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body;
  assert.equal(job.status, 'delayed');
  assert.equal(job.priority, 9);
  assert.equal(Date.parse(job.expiresAt!), Date.parse(job.createdAt) + 3_600_000);
  assert.match(ok(await cli(t, env, 'promote', id)).stdout, new RegExp(`^${id} queued$`, 'm'));
  const again = await cli(t, env, 'promote', id);
  assert.notEqual(again.code, 0, 'a job that is not delayed');
  assert.match(again.stderr, /only a delayed job can be promoted/);
  const bad = await cli(t, env, 'submit', '--priority', '11', '--', 'true');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--priority must be a whole number from 1 to 10/);
});
