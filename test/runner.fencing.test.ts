import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { test, type TestContext } from 'node:test';
import { DroverError, createLogger, defaultFenceMarginMs, loadConfig, type JobRecord } from '@drover/core';
import { Runner } from '@drover/runner';
import { LeaseFence } from '../services/runner/src/lease-fence.js';
import { jobTempDir } from './helpers/job-dir.js';
import { AMQP_URL, REDIS_URL, TEST_CALLBACK_SECRET, alive, startStack, type Stack } from './helpers/stack.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { until } from './helpers/until.js';

type Attempts = { attemptHistory: { attempt: number; status: string; error: string | null }[] };

test('the fence keeps the deadline at lease - margin from the last confirmed renewal, counted from when it was sent', () => {
  let now = 0;
  const deadlines: number[] = [];
  const fence = new LeaseFence({ leaseMs: 3000, marginMs: 1000 }, 0, () => now);
  // A renewal confirmed before the process exists moves the lease; the first deadline counts from it.
  now = 400;
  fence.renewed(300);
  now = 500;
  fence.attach({ setDeadline: (ms) => deadlines.push(ms) });
  assert.deepEqual(deadlines, [1800]);
  // Confirmed 50 ms after it was sent: the 50 ms are gone from the deadline.
  now = 1050;
  fence.renewed(1000);
  // Slow: sent at 2000, confirmed at 2600.
  now = 2600;
  fence.renewed(2000);
  // An older renewal confirmed late does not take the lease back.
  now = 2700;
  fence.renewed(500);
  assert.deepEqual(deadlines, [1800, 1950, 1400, 1300]);
  assert.equal(fence.unrenewedMs(), 700);
  // Confirmed after the lease (less the margin) was over: kill now.
  now = 4500;
  fence.renewed(2100);
  assert.equal(deadlines.at(-1), 0);
  // A renewal that hangs calls nothing, so nothing moves; once the process is gone, nothing is set any more.
  fence.detach();
  fence.renewed(4500);
  assert.equal(deadlines.length, 5);
});

test('RUNNER_FENCE_MARGIN_MS: defaults from the lease; more than half the lease is a configuration error', () => {
  assert.deepEqual([1000, 3000, 30_000, 600_000].map(defaultFenceMarginMs), [500, 1000, 6000, 120_000]);
  assert.equal(loadConfig({}).runner.fenceMarginMs, 6000);
  assert.equal(loadConfig({ RUNNER_LEASE_MS: '10000', RUNNER_FENCE_MARGIN_MS: '5000' }).runner.fenceMarginMs, 5000);
  for (const env of [{ RUNNER_LEASE_MS: '10000', RUNNER_FENCE_MARGIN_MS: '5001' }, { RUNNER_FENCE_MARGIN_MS: '0' }, { RUNNER_FENCE_MARGIN_MS: 'soon' }]) {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof DroverError && err.code === 'CONFIG' && /RUNNER_FENCE_MARGIN_MS/.test(err.message), JSON.stringify(env));
  }
});

const LEASE_MS = 3000;

/**
 * Runs `body` with a runner in this process whose Redis traffic (store and broker) goes through a proxy the test
 * controls. The runner is closed right after the body (after hooks run in the order they were added, so the
 * stack's cleanup would otherwise come first and delete the prefix under a running runner).
 */
async function withProxiedRunner(t: TestContext, s: Stack, env: Record<string, string>, body: (runner: Runner, proxy: TcpProxy) => Promise<void>): Promise<void> {
  const target = new URL(REDIS_URL);
  const proxy = await startTcpProxy(t, { host: target.hostname, port: Number(target.port || 6379) });
  const config = loadConfig({
    REDIS_URL: proxy.url(REDIS_URL), AMQP_URL, DROVER_PREFIX: s.prefix, DROVER_BROKER: 'bullmq', DROVER_KILL_GRACE_MS: '500',
    DROVER_CALLBACK_SECRET: TEST_CALLBACK_SECRET, RUNNER_ID: `fenced-${s.prefix.slice(5, 13)}`, RUNNER_LEASE_MS: String(LEASE_MS), ...env,
  });
  const runner = new Runner({ config, logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test') });
  try {
    await runner.start();
    await body(runner, proxy);
  } finally {
    proxy.heal();
    await runner.close();
  }
}

/** The attempt's shell pid, once the attempt wrote it. */
async function pidOf(dir: string, attempt: number): Promise<number> {
  const file = join(dir, `pid.${attempt}`);
  await until(`attempt ${attempt} to start`, () => existsSync(file) && readFileSync(file, 'utf8').endsWith('\n'), 10_000);
  return Number(readFileSync(file, 'utf8').trim());
}

const command = (dir: string): string => `echo $$ > ${dir}/pid.$DROVER_ATTEMPT; [ "$DROVER_ATTEMPT" -ge 2 ] && exit 0; sleep 60`;

test('cut off from Redis, the runner kills its job before the lease ends; back online, the attempt is recorded lost (fenced) and run again', async (t) => {
  // No scheduler: nothing expires the lease, so the fenced outcome lands and the retry goes through maxLost.
  const s = await startStack(t, { runner: false, scheduler: false });
  const dir = jobTempDir(t, 'drover-fence-');
  await withProxiedRunner(t, s, {}, async (runner, proxy) => {
    const job = await s.submit({ command: command(dir) });
    const pid = await pidOf(dir, 1);
    // Control: while renewals go through, the fence never fires, however many leases long the job runs.
    const claimedAt = Date.parse((await s.waitFor(job.id, (j) => j.status === 'running')).claimedAt!);
    await until('two leases of heartbeats', async () => {
      const r = await s.request<{ lastHeartbeatAt: string }>('GET', `/v1/runners/${runner.id}`);
      return r.status === 200 && Date.parse(r.body.lastHeartbeatAt) >= claimedAt + 2 * LEASE_MS;
    }, 15_000);
    assert.ok(alive(pid), 'a job whose lease is renewed is not fenced');

    proxy.blackhole();
    await until('the fenced job to be killed', () => !alive(pid), 10_000);
    proxy.heal();
    const done = await s.waitFor(job.id);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual([done.attempts, done.lostCount, done.failureCount], [2, 1, 0]);
    const h = (await s.request<JobRecord & Attempts>('GET', `/v1/jobs/${job.id}`)).body.attemptHistory;
    assert.deepEqual(h.map((a) => a.status), ['lost', 'succeeded']);
    assert.match(h[0]!.error ?? '', /^fenced: the lease was not renewed for \d+ ms \(store unreachable or runner stalled\)/);
  });
});

test("the spawner helper fences a job while the runner's event loop is stalled", async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const dir = jobTempDir(t, 'drover-stall-');
  await withProxiedRunner(t, s, { RUNNER_EXECUTOR: 'spawner' }, async () => {
    const job = await s.submit({ command: command(dir) });
    const pid = await pidOf(dir, 1);
    await s.waitFor(job.id, (j) => j.status === 'running');
    // Nothing in this process runs while it spins: no heartbeat, no timer. Only the helper can keep the deadline.
    const stallEnd = performance.now() + LEASE_MS + 500;
    while (performance.now() < stallEnd) {
      if (!alive(pid)) break;
    }
    assert.equal(alive(pid), false, 'killed while the event loop was still stalled');
    const done = await s.waitFor(job.id);
    assert.equal(done.status, 'succeeded');
    const h = (await s.request<JobRecord & Attempts>('GET', `/v1/jobs/${job.id}`)).body.attemptHistory;
    assert.deepEqual(h.map((a) => a.status), ['lost', 'succeeded']);
    assert.match(h[0]!.error ?? '', /^fenced: /);
  });
});
