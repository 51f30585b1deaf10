import assert from 'node:assert/strict';
import { startStack, brokerTest } from './helpers/stack.js';

brokerTest('a failing job is retried with exponential backoff until it succeeds', async (t, broker) => {
  const s = await startStack(t, { broker });
  // Fails on attempts 1 and 2, succeeds on 3.
  const job = await s.submit({ command: 'echo "attempt $DROVER_ATTEMPT"; [ "$DROVER_ATTEMPT" -ge 3 ]', retries: 5, backoff: { type: 'exponential', delayMs: 150 } });
  const done = await s.waitFor(job.id);
  assert.equal(done.status, 'succeeded');
  assert.equal(done.attempts, 3);
  const full = await s.request<{ attemptHistory: { attempt: number; status: string; exitCode: number; startedAt: string; finishedAt: string }[] }>(
    'GET', `/v1/jobs/${job.id}`,
  );
  const h = full.body.attemptHistory;
  assert.deepEqual(h.map((a) => [a.attempt, a.status, a.exitCode]), [[1, 'failed', 1], [2, 'failed', 1], [3, 'succeeded', 0]]);
  // Backoff is a lower bound on the gap between one attempt's end and the next one's start: 150 ms, then 300 ms.
  const gap = (i: number): number => Date.parse(h[i + 1]!.startedAt) - Date.parse(h[i]!.finishedAt);
  assert.ok(gap(0) >= 150, `first gap ${gap(0)} ms`);
  assert.ok(gap(1) >= 300, `second gap ${gap(1)} ms`);
  const logs = await s.request<{ items: { line: string; attempt: number }[] }>('GET', `/v1/jobs/${job.id}/logs`);
  assert.deepEqual(logs.body.items.map((l) => [l.attempt, l.line]), [[1, 'attempt 1'], [2, 'attempt 2'], [3, 'attempt 3']]);
});

brokerTest('retries run out: the last failure is final; timeouts are retried too', async (t, broker) => {
  const s = await startStack(t, { broker });
  const failing = await s.run({ command: 'exit 7', retries: 2, backoff: { type: 'fixed', delayMs: 10 } });
  assert.equal(failing.status, 'failed');
  assert.equal(failing.exitCode, 7);
  assert.equal(failing.attempts, 3);
  const slow = await s.run({ command: 'sleep 5', timeoutMs: 100, retries: 1, backoff: { type: 'fixed', delayMs: 0 } });
  assert.equal(slow.status, 'timed_out');
  assert.equal(slow.attempts, 2);
});
