// GET /v1/stats end to end: jobs run by a real runner show up in the aggregates the API keeps, a token restricted
// to some queues sees only those (and no shared runner load), bad input is refused with nothing changed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { StatsView } from '@drover/core';
import { startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

type Stats = StatsView & { truncated: boolean };
interface Problem {
  error: { code: string; message: string };
}

test('throughput, failures, queue waits and runner load through HTTP, scoped to the token\'s queues', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'default,mine', RUNNER_CONCURRENCY: '2' } });
  const mine = randomBytes(24).toString('base64url');
  s.registry.add(mine, { name: 'mine', scope: 'read', queues: ['mine'] });

  await Promise.all([
    s.run({ command: 'true' }),
    s.run({ command: 'true' }),
    s.run({ command: 'exit 3' }),
    s.run({ command: 'sleep 5', timeoutMs: 200 }),
    s.run({ command: 'true', queue: 'mine' }),
  ]);

  const byName = (v: Stats, name: string) => v.queues.find((q) => q.name === name);
  const all = await until('the finished jobs counted', async () => {
    const r = await s.request<Stats>('GET', '/v1/stats');
    const d = byName(r.body, 'default');
    return r.status === 200 && d && d.totals.succeeded === 2 && d.totals.failed === 1 && d.totals.timed_out === 1 && byName(r.body, 'mine')?.totals.succeeded === 1 && r.body;
  }, 15_000);
  assert.equal(all.range, 'hour');
  assert.equal(all.times.length, 60);
  assert.equal(all.truncated, false);
  const d = byName(all, 'default')!;
  assert.equal(d.totals.started, 4);
  assert.equal(d.waitOverall.count, 4, 'a queue wait for every start');
  assert.ok(d.waitOverall.p50 !== null && d.waitOverall.p50 >= 0 && d.waitOverall.p50 < 60_000, `p50 ${d.waitOverall.p50}`);
  assert.equal(d.outcomes.succeeded.reduce((a, b) => a + b), 2);
  // The last bucket is the current minute: what just ran is in the last one or two.
  assert.equal(d.outcomes.succeeded.slice(-2).reduce((a, b) => a + b), 2);

  // The day view holds the same jobs; one queue can be asked for alone.
  const day = await s.request<Stats>('GET', '/v1/stats?range=day&queue=default');
  assert.equal(day.status, 200);
  assert.deepEqual(day.body.queues.map((q) => q.name), ['default']);
  assert.equal(day.body.stepMs, 900_000);
  assert.equal(day.body.queues[0]!.totals.succeeded, 2);

  // Runner load: sampled every 10 s, so the runner shows within a slot or two.
  const load = await until('the runner sampled', async () => {
    const r = await s.request<Stats>('GET', '/v1/stats');
    return r.body.runners?.find((x) => x.id === s.runner!.id);
  }, 25_000);
  assert.equal(load.slots.at(-1) ?? load.slots.at(-2), 2);

  // The restricted token: its queue only, no runner load, and another queue answers what a missing one answers.
  const scoped = await s.request<Stats>('GET', '/v1/stats', undefined, mine);
  assert.equal(scoped.status, 200);
  assert.deepEqual(scoped.body.queues.map((q) => q.name), ['mine']);
  assert.equal(scoped.body.runners, null);
  assert.ok(!JSON.stringify(scoped.body).includes('default'));
  const foreign = await s.request<Problem>('GET', '/v1/stats?queue=default', undefined, mine);
  const ghost = await s.request<Problem>('GET', '/v1/stats?queue=ghost', undefined, mine);
  assert.equal(foreign.status, 404);
  assert.deepEqual([foreign.status, foreign.body.error.code], [ghost.status, ghost.body.error.code]);
  assert.equal(foreign.body.error.message.replace('default', 'ghost'), ghost.body.error.message);
  // Control: the unrestricted token does see queue default.
  assert.equal((await s.request('GET', '/v1/stats?queue=default')).status, 200);
});

test('bad stats requests: 4xx with the error envelope', async (t) => {
  const s = await startStack(t, { runner: false });
  for (const [path, status] of [
    ['/v1/stats?range=week', 400],
    ['/v1/stats?queue=no%20spaces', 400],
    ['/v1/stats?queue=a&queue=b', 400],
    ['/v1/stats?limit=3', 400],
    ['/v1/stats?queue=unknown', 404],
  ] as const) {
    const r = await s.request<Problem>('GET', path);
    assert.equal(r.status, status, `${path}: ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.error.code, 'string', path);
    assert.equal(typeof r.body.error.message, 'string', path);
  }
  assert.equal((await s.request<Problem>('GET', '/v1/stats', undefined, null)).status, 401);
  // An empty deployment: no queues, no runners, an empty answer rather than an error.
  const empty = await s.request<Stats>('GET', '/v1/stats');
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.body.queues, []);
});
