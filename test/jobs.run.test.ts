import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { jobTempDir } from './helpers/job-dir.js';
import { startStack, brokerTest } from './helpers/stack.js';

interface LogPage {
  items: { id: string; stream: string; line: string; ts: string; attempt: number }[];
  nextCursor: string | null;
  done: boolean;
  truncated: boolean;
}

brokerTest('a command runs, its output and exit code are recorded, logs page with a cursor', async (t, broker) => {
  const s = await startStack(t, { broker });
  const job = await s.run({ command: 'echo hello; echo oops >&2; echo world; exit 3' });
  assert.equal(job.status, 'failed');
  assert.equal(job.exitCode, 3);
  assert.equal(job.signal, null);
  assert.equal(job.attempts, 1);
  assert.equal(job.runnerId, s.runner?.id);
  assert.equal(job.pid, null, 'pid is only shown while running');
  for (const k of ['createdAt', 'queuedAt', 'startedAt', 'finishedAt'] as const) {
    assert.match(job[k] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, k);
  }
  assert.ok(Date.parse(job.startedAt!) <= Date.parse(job.finishedAt!));

  const all = await s.request<LogPage>('GET', `/v1/jobs/${job.id}/logs`);
  assert.equal(all.status, 200);
  assert.deepEqual(
    all.body.items.map((i) => [i.stream, i.line]).sort(),
    [['stderr', 'oops'], ['stdout', 'hello'], ['stdout', 'world']],
  );
  assert.equal(all.body.done, true);
  assert.equal(all.body.nextCursor, null);

  const first = await s.request<LogPage>('GET', `/v1/jobs/${job.id}/logs?limit=2`);
  assert.equal(first.body.items.length, 2);
  assert.equal(first.body.done, false);
  assert.ok(first.body.nextCursor);
  const rest = await s.request<LogPage>('GET', `/v1/jobs/${job.id}/logs?limit=2&cursor=${first.body.nextCursor}`);
  assert.equal(rest.body.items.length, 1);
  assert.equal(rest.body.done, true);
  assert.deepEqual([...first.body.items, ...rest.body.items].map((i) => i.id), all.body.items.map((i) => i.id));
});

brokerTest('argv runs without a shell; env, cwd and the DROVER_* variables reach the child; runner secrets do not', async (t, broker) => {
  const s = await startStack(t, { broker });
  const dir = jobTempDir(t, 'drover-cwd-');
  process.env.DROVER_TEST_SECRET = 'must-not-leak';
  t.after(() => delete process.env.DROVER_TEST_SECRET);
  const job = await s.run({
    argv: ['/bin/sh', '-c', 'echo "$GREETING|$(pwd)|$DROVER_JOB_ID|$DROVER_QUEUE|$DROVER_ATTEMPT|${DROVER_TEST_SECRET:-none}"; echo "$1"', 'sh', '$HOME; not expanded'],
    env: { GREETING: 'hi there' },
    cwd: dir,
  });
  assert.equal(job.status, 'succeeded');
  assert.equal(job.exitCode, 0);
  assert.deepEqual(job.envKeys, ['GREETING']);
  const logs = await s.request<LogPage>('GET', `/v1/jobs/${job.id}/logs`);
  assert.deepEqual(logs.body.items.map((i) => i.line), [`hi there|${dir}|${job.id}|default|1|none`, '$HOME; not expanded']);
});

brokerTest('a command that cannot start fails with the reason', async (t, broker) => {
  const s = await startStack(t, { broker });
  const missing = await s.run({ argv: ['/nonexistent/program'] });
  assert.equal(missing.status, 'failed');
  assert.equal(missing.exitCode, null);
  assert.match(missing.error ?? '', /could not start: .*ENOENT/);
  const badCwd = await s.run({ command: 'true', cwd: '/nonexistent/dir' });
  assert.equal(badCwd.status, 'failed');
  assert.match(badCwd.error ?? '', /could not start/);
});

brokerTest('batch submits all jobs at once; lists filter by queue and status and page with a cursor', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: 'default,other' } });
  const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', {
    jobs: [
      { command: 'true' },
      { command: 'false' },
      { command: 'true', queue: 'other', labels: { team: 'ops' } },
      { argv: ['true'] },
      { command: 'exit 0' },
    ],
  });
  assert.equal(res.status, 201);
  assert.equal(res.body.jobs.length, 5);
  assert.ok(res.body.jobs.every((j) => j.status === 'queued'));
  const done = await Promise.all(res.body.jobs.map((j) => s.waitFor(j.id)));
  assert.deepEqual(done.map((j) => j.status), ['succeeded', 'failed', 'succeeded', 'succeeded', 'succeeded']);
  assert.deepEqual(done[2]!.labels, { team: 'ops' });

  const failed = await s.request<{ items: JobRecord[]; nextCursor: string | null }>('GET', '/v1/jobs?status=failed');
  assert.deepEqual(failed.body.items.map((j) => j.id), [done[1]!.id]);
  const other = await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?queue=other&status=succeeded');
  assert.deepEqual(other.body.items.map((j) => j.id), [done[2]!.id]);

  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { status: number; body: { items: JobRecord[]; nextCursor: string | null } } = await s.request(
      'GET', `/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
    );
    assert.equal(page.status, 200);
    assert.ok(page.body.items.length <= 2);
    seen.push(...page.body.items.map((j) => j.id));
    cursor = page.body.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, res.body.jobs.map((j) => j.id).reverse(), 'newest first, every job exactly once');
});

test('health and readiness are open; everything else needs a token with the right scope', async (t) => {
  const s = await startStack(t, { runner: false });
  assert.equal((await s.request('GET', '/healthz', undefined, null)).status, 200);
  assert.equal((await s.request('GET', '/readyz', undefined, null)).status, 200);
  const none = await s.request<{ error: { code: string } }>('GET', '/v1/jobs', undefined, null);
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'UNAUTHORIZED');
  const bad = await s.request<{ error: { code: string } }>('GET', '/v1/jobs', undefined, 'not-a-real-token-at-all');
  assert.equal(bad.status, 401);
  const readSubmit = await s.request<{ error: { code: string } }>('POST', '/v1/jobs', { command: 'true' }, s.tokens.read);
  assert.equal(readSubmit.status, 403);
  assert.equal(readSubmit.body.error.code, 'FORBIDDEN');
  assert.equal((await s.request('GET', '/v1/jobs', undefined, s.tokens.read)).status, 200);
  const submitted = await s.request<JobRecord>('POST', '/v1/jobs', { command: 'true' }, s.tokens.submit);
  assert.equal(submitted.status, 201);
  assert.equal((await s.request('GET', `/v1/jobs/${submitted.body.id}`, undefined, s.tokens.submit)).status, 200);
  const spec = await s.request<{ openapi: string; paths: Record<string, unknown> }>('GET', '/docs/json', undefined, null);
  assert.equal(spec.status, 200);
  assert.ok(spec.body.paths['/v1/jobs/batch'], 'the OpenAPI document lists the routes');
});

test('by default a job runs in a private directory of its own, removed afterwards; resource limits reach it', async (t) => {
  const s = await startStack(t, { env: { RUNNER_MAX_OPEN_FILES: '512' } });
  const job = await s.run({ command: 'pwd; echo "$TMPDIR"; stat -c %a .; ulimit -n; touch scratch' });
  assert.equal(job.status, 'succeeded');
  const lines = (await s.request<LogPage>('GET', `/v1/jobs/${job.id}/logs`)).body.items.map((i) => i.line);
  const [dir, tmp, mode, nofile] = lines;
  assert.ok(dir?.includes(job.id), `cwd ${dir} is the job's own directory`);
  assert.equal(tmp, dir);
  assert.equal(mode, '700');
  assert.equal(nofile, '512');
  assert.equal(existsSync(dir!), false, 'removed after the job');
});

test('rate limit per token answers 429 in the error envelope; health checks are exempt; security headers are set', async (t) => {
  const s = await startStack(t, { runner: false, env: { DROVER_RATE_LIMIT: '5' } });
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await s.request('GET', '/v1/jobs', undefined, s.tokens.read)).status);
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429]);
  const limited = await s.request<{ error: { code: string; message: string } }>('GET', '/v1/jobs', undefined, s.tokens.read);
  assert.equal(limited.body.error.code, 'RATE_LIMITED');
  assert.equal((await s.request('GET', '/v1/jobs', undefined, s.tokens.admin)).status, 200, 'another token has its own budget');
  for (let i = 0; i < 8; i++) assert.equal((await s.request('GET', '/healthz', undefined, null)).status, 200);
  const res = await fetch(`${s.url}/healthz`);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.ok(res.headers.get('content-security-policy'));
  assert.equal(res.headers.get('access-control-allow-origin'), null, 'no CORS');
});
