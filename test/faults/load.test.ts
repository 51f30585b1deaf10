import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRedis } from '@drover/core';
import { executions, markerDir, record } from '../helpers/audit.js';
import { startServiceReady } from '../helpers/processes.js';
import { startStack } from '../helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const TOTAL = Number(process.env.LOAD_JOBS ?? 20_000);
const CLIENTS = 200;

test(`load: ${CLIENTS} concurrent clients submit ${TOTAL} jobs to 2 runners: no errors, all end, none twice`, async (t) => {
  const s = await startStack(t, { runner: false });
  const { dir, command } = markerDir(t);
  const env = { RUNNER_CONCURRENCY: '8' };
  await Promise.all([startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'load-a' }), startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: 'load-b' })]);

  const latencies: number[] = [];
  const statuses = new Map<number | string, number>();
  const accepted: string[] = [];
  let next = 0;
  const client = async (): Promise<void> => {
    while (next < TOTAL) {
      next++;
      const started = performance.now();
      try {
        const res = await fetch(`${s.url}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${s.tokens.submit}`, 'content-type': 'application/json' },
          body: JSON.stringify({ command: command() }),
          signal: AbortSignal.timeout(30_000),
        });
        latencies.push(performance.now() - started);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201) accepted.push(((await res.json()) as { id: string }).id);
        else await res.text();
      } catch (err) {
        statuses.set((err as Error).name, (statuses.get((err as Error).name) ?? 0) + 1);
      }
    }
  };
  const began = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const submitSeconds = (performance.now() - began) / 1000;

  const redis = createRedis(s.config.redisUrl, 'worker');
  t.after(() => redis.quit());
  const base = `{${s.prefix}}`;
  const terminal = async (): Promise<number> =>
    (await Promise.all(['succeeded', 'failed', 'timed_out', 'cancelled', 'lost'].map((st) => redis.zcard(`${base}:idx:s:${st}`)))).reduce((a, b) => a + b, 0);
  const deadline = Date.now() + 240_000;
  while ((await terminal()) < accepted.length && Date.now() < deadline) await sleep(200);
  const allSeconds = (performance.now() - began) / 1000;

  const runs = executions(dir);
  const duplicated = [...runs.values()].filter((n) => n > 1).length;
  const missing = accepted.filter((id) => !runs.has(id)).length;
  const succeeded = await redis.zcard(`${base}:idx:s:succeeded`);
  latencies.sort((a, b) => a - b);
  const p = (q: number): string => (latencies[Math.floor(q * (latencies.length - 1))] ?? NaN).toFixed(1);
  process.stdout.write(
    `# load: ${accepted.length} accepted in ${submitSeconds.toFixed(1)} s (${(accepted.length / submitSeconds).toFixed(0)}/s), all ended after ${allSeconds.toFixed(1)} s; ` +
      `API latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${p(1)} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`,
  );
  record({ scenario: `load: ${CLIENTS} clients, ${TOTAL} jobs, 2 runners (API p99 ${p(0.99)} ms)`, accepted: accepted.length, succeeded, lost: 0, duplicated, missing });
  assert.deepEqual([...statuses.keys()], [201], 'no error responses');
  assert.equal(accepted.length, TOTAL);
  assert.equal(succeeded, TOTAL, 'every job ended succeeded');
  assert.equal(duplicated, 0, 'none ran twice');
  assert.equal(missing, 0);
});
