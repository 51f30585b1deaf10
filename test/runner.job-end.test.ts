import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { DroverEvent, JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { startServiceReady } from './helpers/processes.js';
import { REDIS_URL, startStack } from './helpers/stack.js';

type LogPage = { items: { line: string }[] };

test('at the default level a successful job has no log line of its own; other outcomes do, and a summary counts them all', async (t) => {
  const s = await startStack(t, { runner: false });
  const runner = await startServiceReady(t, 'runner', s.prefix);
  let log = '';
  runner.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  const ok = await s.run({ command: 'true' });
  const failed = await s.run({ command: 'exit 3' });
  assert.equal(ok.status, 'succeeded');
  assert.equal(failed.status, 'failed');
  runner.kill('SIGTERM');
  await once(runner, 'exit');
  const lines = log.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const perJob = lines.filter((l) => l.msg === 'job finished');
  assert.deepEqual(perJob.map((l) => l.jobId), [failed.id], 'only the failure is logged per job');
  assert.equal(perJob[0]!.level, 30, 'at info');
  assert.equal(perJob[0]!.exitCode, 3);
  const summary = lines.filter((l) => l.msg === 'jobs finished');
  assert.equal(summary.length, 1, 'the summary is logged at shutdown, with what it counted since its last line');
  assert.equal(summary[0]!.finished, 2);
  assert.deepEqual(summary[0]!.outcomes, { succeeded: 1, failed: 1 });
});

test('an empty job directory is removed; a job that wrote its result file still gets it recorded; job.started carries queuedAt', async (t) => {
  const s = await startStack(t);
  const empty = await s.run({ command: 'pwd' });
  const dir = (await s.request<LogPage>('GET', `/v1/jobs/${empty.id}/logs`)).body.items[0]?.line;
  assert.ok(dir?.includes(empty.id), `cwd ${dir} is the job's own directory`);
  assert.equal(existsSync(dir!), false, 'removed after the job');
  const reported = await s.run({ command: 'echo \'{"n":1}\' > "$DROVER_RESULT_FILE"' });
  assert.deepEqual((reported as JobRecord & { result: unknown }).result, { n: 1 });
  const events = (await s.request<{ items: DroverEvent[] }>('GET', `/v1/events?after=0-0&limit=1000&job=${empty.id}`)).body.items;
  const started = events.find((e) => e.type === 'job.started');
  const record = (await s.request<JobRecord>('GET', `/v1/jobs/${empty.id}`)).body;
  assert.equal(started?.data.queuedAt, Date.parse(record.queuedAt!), "the job's queuedAt");
  assert.equal(typeof started?.data.queuedAt, 'number', 'the wait the dashboard counts comes with the event');
});

test("BullMQ's own events stream, which Drover never reads, stays short however many jobs pass", async (t) => {
  const s = await startStack(t);
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.quit());
  const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 400 }, () => ({ command: 'true' })) });
  assert.equal(res.status, 201);
  for (const j of res.body.jobs) await s.waitFor(j.id);
  const len = await redis.xlen(`{${s.prefix}}:bull:q-default:events`);
  assert.ok(len > 0, 'the stream is where this test looks');
  // About four entries per job (1600 here) under BullMQ's default cap of 10 000; trimmed whole nodes at a time.
  assert.ok(len <= 300, `${len} entries`);
});

test("the attempt that ended a job is its record's own: in the history once, with no list entry written for it", async (t) => {
  const s = await startStack(t);
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.quit());
  type Full = JobRecord & { attemptHistory: { attempt: number; status: string; exitCode: number | null; runnerId: string; startedAt: string; finishedAt: string }[] };
  const ok = await s.run({ command: 'true' });
  const full = (await s.request<Full>('GET', `/v1/jobs/${ok.id}`)).body;
  assert.deepEqual(full.attemptHistory.map((a) => [a.attempt, a.status, a.exitCode]), [[1, 'succeeded', 0]]);
  assert.equal(full.attemptHistory[0]!.startedAt, full.startedAt);
  assert.equal(full.attemptHistory[0]!.finishedAt, full.finishedAt);
  assert.equal(full.attemptHistory[0]!.runnerId, full.runnerId);
  assert.equal(await redis.llen(`{${s.prefix}}:job:${ok.id}:attempts`), 0, 'no list for a job that ran once');
  const retried = await s.run({ command: 'exit 4', retries: 1, backoff: { type: 'fixed', delayMs: 0 } });
  const again = (await s.request<Full>('GET', `/v1/jobs/${retried.id}`)).body;
  assert.deepEqual(again.attemptHistory.map((a) => [a.attempt, a.status, a.exitCode]), [[1, 'failed', 4], [2, 'failed', 4]]);
  assert.equal(await redis.llen(`{${s.prefix}}:job:${retried.id}:attempts`), 1, 'the attempt it went on after');
});
