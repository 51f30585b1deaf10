import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { jobTempDir } from './helpers/job-dir.js';
import { alive, startStack, brokerTest } from './helpers/stack.js';

const tempDir = (t: { after: (fn: () => void) => void }): string => jobTempDir(t, 'drover-test-');

async function readPids(file: string, count: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    try {
      const pids = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(Number);
      if (pids.length >= count) return pids;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${file} never held ${count} pids`);
}

// The command leaves a background child and a grandchild that ignores SIGTERM: all must die with the group.
const FAMILY = (file: string): string =>
  `sleep 60 & echo $! >> ${file}; sh -c 'trap "" TERM; echo $$ >> ${file}; while :; do sleep 0.05; done' & echo $$ >> ${file}; wait`;

brokerTest('a timeout kills the whole process group, leaving no orphan', async (t, broker) => {
  const s = await startStack(t, { broker });
  const dir = tempDir(t);
  const pidFile = join(dir, 'pids');
  const job = await s.run({ command: FAMILY(pidFile), timeoutMs: 300 });
  assert.equal(job.status, 'timed_out');
  assert.match(job.error ?? '', /timed out after 300 ms/);
  const pids = await readPids(pidFile, 3);
  assert.deepEqual(pids.filter(alive), [], 'every process of the job is gone');
});

brokerTest('cancelling a running job stops its group and answers with the final state', async (t, broker) => {
  const s = await startStack(t, { broker });
  const dir = tempDir(t);
  const pidFile = join(dir, 'pids');
  const job = await s.submit({ command: FAMILY(pidFile), retries: 3 });
  await s.waitFor(job.id, (j) => j.status === 'running' && j.pid !== null);
  const pids = await readPids(pidFile, 3);
  const res = await s.request<JobRecord>('POST', `/v1/jobs/${job.id}/cancel`);
  assert.equal(res.status, 200);
  assert.equal(res.body.status, 'cancelled', 'a cancel is final: no retry follows');
  assert.equal(res.body.attempts, 1);
  assert.deepEqual(pids.filter(alive), []);
  const again = await s.request<{ error: { code: string } }>('POST', `/v1/jobs/${job.id}/cancel`);
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'CONFLICT');
});

brokerTest('a cancelled queued job never runs, even when its message is delivered later', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  const dir = tempDir(t);
  const marker = join(dir, 'ran');
  const job = await s.submit({ command: `touch ${marker}` });
  const res = await s.request<JobRecord>('POST', `/v1/jobs/${job.id}/cancel`);
  assert.equal(res.status, 200);
  assert.equal(res.body.status, 'cancelled');
  // Now a runner comes up and receives the message that is still in the broker.
  const { Runner } = await import('@drover/runner');
  const { createLogger } = await import('@drover/core');
  const runner = new Runner({ config: s.config, logger: createLogger('silent', 'test') });
  t.after(() => runner.close());
  await runner.start();
  const probe = await s.run({ command: 'true' }); // runs after the cancelled one in FIFO order
  assert.equal(probe.status, 'succeeded');
  assert.throws(() => readFileSync(marker), /ENOENT/);
  assert.equal((await s.waitFor(job.id)).attempts, 0);
});

test('unknown job ids are 404 for read, logs and cancel', async (t) => {
  const s = await startStack(t, { runner: false });
  for (const [method, path] of [['GET', ''], ['GET', '/logs'], ['POST', '/cancel']] as const) {
    const res = await s.request<{ error: { code: string } }>(method, `/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV${path}`);
    assert.equal(res.status, 404, path);
    assert.equal(res.body.error.code, 'NOT_FOUND');
  }
});
