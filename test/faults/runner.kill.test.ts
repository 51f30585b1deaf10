import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { audit, markerDir } from '../helpers/audit.js';
import { startServiceReady } from '../helpers/processes.js';
import { startStack } from '../helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('kill -9 one of 3 runners in the middle of 200 jobs: all succeed, only the killed attempts ran twice', async (t) => {
  const s = await startStack(t, { runner: false });
  const { dir, command } = markerDir(t);
  const env = { RUNNER_CONCURRENCY: '4', RUNNER_LEASE_MS: '1000' };
  const runners = await Promise.all(['a', 'b', 'c'].map((id) => startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: `kill-${id}` })));
  const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 200 }, () => ({ command: command('sleep 0.1'), retries: 2 })) });
  assert.equal(res.status, 201);
  const ids = res.body.jobs.map((j) => j.id);
  while ((await s.request<{ items: unknown[] }>('GET', '/v1/jobs?status=succeeded&limit=60')).body.items.length < 60) await sleep(50);
  runners[1]!.kill('SIGKILL');
  await once(runners[1]!, 'exit');
  const a = await audit(s, 'kill -9 a runner (3 runners, 200 jobs)', ids, dir);
  assert.deepEqual(a.notEnded, []);
  assert.equal(a.succeeded, 200);
  assert.equal(a.duplicated, 0);
  assert.equal(a.missing, 0);
  assert.ok(a.lost > 0, 'the killed runner held jobs');
});

test('SIGTERM a runner under load: it drains and exits 0; nothing lost or doubled', async (t) => {
  const s = await startStack(t, { runner: false });
  const { dir, command } = markerDir(t);
  const env = { RUNNER_CONCURRENCY: '4', RUNNER_DRAIN_TIMEOUT_MS: '30000' };
  const [first] = await Promise.all([startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'term-a' }), startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'term-b' })]);
  const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 200 }, () => ({ command: command('sleep 0.1') })) });
  const ids = res.body.jobs.map((j) => j.id);
  while ((await s.request<{ items: unknown[] }>('GET', '/v1/jobs?status=succeeded&limit=40')).body.items.length < 40) await sleep(50);
  first.kill('SIGTERM');
  const [code] = (await once(first, 'exit')) as [number | null];
  assert.equal(code, 0);
  const a = await audit(s, 'SIGTERM a runner under load (2 runners, 200 jobs)', ids, dir);
  assert.deepEqual([a.succeeded, a.lost, a.duplicated, a.missing, a.notEnded.length], [200, 0, 0, 0, 0]);
});
