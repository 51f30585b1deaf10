import assert from 'node:assert/strict';
import type { JobRecord } from '@drover/core';
import { startStack, brokerTest } from './helpers/stack.js';

brokerTest('the runner never runs more jobs at once than RUNNER_CONCURRENCY', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_CONCURRENCY: '3' } });
  const jobs = Array.from({ length: 12 }, () => ({ command: 'sleep 0.15' }));
  const res = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs });
  const done = await Promise.all(res.body.jobs.map((j) => s.waitFor(j.id)));
  assert.ok(done.every((j) => j.status === 'succeeded'));
  // Sweep the [start, finish] intervals and find the deepest overlap.
  const events = done.flatMap((j) => [[Date.parse(j.startedAt!), 1], [Date.parse(j.finishedAt!), -1]] as const);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of events) peak = Math.max(peak, (now += d));
  assert.ok(peak <= 3, `peak concurrency ${peak}`);
  assert.equal(peak, 3, 'the limit is used, not just respected');
});

brokerTest('output beyond the cap is dropped and the job is marked truncated', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_OUTPUT_CAP: '2000' } });
  const job = await s.run({ command: 'for i in $(seq 1 500); do echo "line $i of the output"; done; echo done >&2' });
  assert.equal(job.status, 'succeeded', 'the command is not disturbed by the cap');
  assert.equal(job.truncated, true);
  assert.equal(job.outputBytes, 2000);
  const logs = await s.request<{ items: { line: string }[]; truncated: boolean }>('GET', `/v1/jobs/${job.id}/logs?limit=10000`);
  assert.equal(logs.body.truncated, true);
  const stored = logs.body.items.reduce((n, i) => n + Buffer.byteLength(i.line) + 1, 0);
  assert.ok(stored <= 2001, `stored ${stored} bytes`);
  assert.equal(logs.body.items[0]!.line, 'line 1 of the output');
});
