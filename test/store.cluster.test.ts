import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Cluster } from 'ioredis';
import { STORE_SCRIPTS, createLogger, lua, type JobRecord } from '@drover/core';
import { NamespacedRunner } from '@drover/runner';
import { NamespacedScheduler } from '@drover/scheduler';
import { primaryPortOf, startLocalCluster, type LocalCluster } from './helpers/redis-cluster.js';
import { BROKERS, startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

/** A client of the test's cluster, closed after the test. */
function clusterClient(t: TestContext, c: LocalCluster): Cluster {
  const client = new Cluster(c.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { lazyConnect: true });
  client.on('error', () => undefined);
  t.after(() => client.disconnect());
  return client;
}

test('Redis Cluster (3 primaries, 3 replicas): every script loads on every primary; jobs, workflows, schedules, cancel, logs and events work end to end on both brokers', { timeout: 120_000 }, async (t) => {
  const cluster = await startLocalCluster(t, 3, true);
  const client = clusterClient(t, cluster);
  await client.connect();
  for (const node of client.nodes('master')) {
    for (const name of STORE_SCRIPTS) assert.match((await node.script('LOAD', lua(name))) as string, /^[0-9a-f]{40}$/, name);
  }
  for (const broker of BROKERS) {
    await t.test(broker, async (tt) => {
      const s = await startStack(tt, { broker, redisUrl: cluster.url });
      const done = await s.run({ command: 'echo on a cluster' });
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
      const logs = await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${done.id}/logs`);
      assert.deepEqual(logs.body.items.map((l) => l.line), ['on a cluster']);
      // Priorities and store order, delayed jobs (the scheduler's promotion), a cancel of a running job.
      const later = await s.submit({ command: 'true', delayMs: 300, priority: 9 });
      const sleeper = await s.submit({ command: 'sleep 30' });
      await s.waitFor(sleeper.id, (j) => j.status === 'running');
      assert.ok((await s.request('POST', `/v1/jobs/${sleeper.id}/cancel`)).status < 300);
      assert.equal((await s.waitFor(sleeper.id)).status, 'cancelled');
      assert.equal((await s.waitFor(later.id)).status, 'succeeded');
      // A workflow (dependencies released inside the scripts) and a schedule's trigger.
      const wf = await s.request<{ id: string; steps: { name: string; jobId: string }[] }>('POST', '/v1/workflows', {
        name: 'on-cluster', steps: [{ name: 'a', job: { command: 'true' } }, { name: 'b', job: { command: 'true' }, dependsOn: ['a'] }],
      });
      assert.equal(wf.status, 201, JSON.stringify(wf.body));
      for (const st of wf.body.steps) assert.equal((await s.waitFor(st.jobId)).status, 'succeeded');
      assert.equal((await s.request('POST', '/v1/schedules', { name: 'c', cron: '0 0 1 1 *', job: { command: 'true' } })).status, 201);
      const fired = await s.request<JobRecord>('POST', '/v1/schedules/c/trigger', {});
      assert.equal(fired.status, 201, JSON.stringify(fired.body));
      assert.equal((await s.waitFor(fired.body.id)).status, 'succeeded');
      const events = await s.request<{ items: { type: string }[] }>('GET', '/v1/events?types=job.succeeded&limit=100');
      assert.ok(events.body.items.length >= 5, JSON.stringify(events.body));
      // The deployment's keys (BullMQ's too) are on one primary: the slot of its hash tag.
      const holders: number[] = [];
      for (const node of client.nodes('master')) {
        const [, keys] = await node.scan('0', 'MATCH', `{${s.prefix}}*`, 'COUNT', 100_000);
        if (keys.length > 0) holders.push(node.options.port!);
      }
      assert.deepEqual(holders, [await primaryPortOf(cluster, `{${s.prefix}}`)]);
    });
  }
});

/** Calls of EVALSHA and EVAL a node has served (INFO commandstats). */
async function scriptCalls(node: import('ioredis').Redis): Promise<number> {
  const info = await node.info('commandstats');
  return [...info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

test('Redis Cluster: three namespaces of one deployment land on three primaries; jobs of one load its primary only', { timeout: 120_000 }, async (t) => {
  const cluster = await startLocalCluster(t, 3, false);
  const client = clusterClient(t, cluster);
  await client.connect();
  const primaries = client.nodes('master');
  assert.equal(primaries.length, 3);
  // In a subtest: its services close before the cluster stops (the outer test's after-hooks).
  await t.test('one namespace per primary', async (tt) => {
    // A slow tick: the idle namespaces' services issue few commands (the jobs are published by the API, not the
    // tick), so the counts below are the jobs', even on a machine busy with other tests.
    const s = await startStack(tt, { redisUrl: cluster.url, runner: false, scheduler: false, env: { SCHEDULER_TICK_MS: '5000', RUNNER_CONCURRENCY: '8', RUNNER_NAMESPACE: '*' } });
    const spaces: { port: number; ns: string }[] = [];
    for (let i = 0; spaces.length < 3; i++) {
      const ns = `n${i}`;
      const port = await primaryPortOf(cluster, `{${s.prefix}/${ns}}`);
      if (spaces.some((x) => x.port === port)) continue;
      assert.equal((await s.request('POST', '/v1/namespaces', { name: ns })).status, 201);
      spaces.push({ port, ns });
    }
    // The services of the deployment: one scheduler and one runner, each serving every namespace.
    const logger = createLogger('silent', 'test');
    const scheduler = new NamespacedScheduler({ config: s.config, logger, metrics: s.metrics });
    const runner = new NamespacedRunner({ config: s.config, logger, metrics: s.metrics });
    tt.after(async () => {
      await runner.close();
      await scheduler.close();
    });
    await scheduler.start();
    await runner.start();
    assert.deepEqual(runner.namespaces.sort(), ['default', ...spaces.map((x) => x.ns)].sort());
    for (const [i, busy] of spaces.entries()) {
      const before = await Promise.all(primaries.map(scriptCalls));
      const res = await s.request<{ jobs: JobRecord[] }>('POST', `/v1/jobs/batch?namespace=${busy.ns}`, { jobs: Array.from({ length: 100 }, () => ({ command: 'true' })) });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      for (const j of res.body.jobs) {
        await until(`job ${j.id} of ${busy.ns}`, async () => (await s.request<JobRecord>('GET', `/v1/jobs/${j.id}?namespace=${busy.ns}`)).body.status === 'succeeded', 30_000, 20);
      }
      const after = await Promise.all(primaries.map(scriptCalls));
      const delta = after.map((a, k) => a - before[k]!);
      const mine = delta[primaries.findIndex((n) => n.options.port === busy.port)]!;
      const others = delta.filter((_, k) => primaries[k]!.options.port !== busy.port);
      process.stdout.write(`# namespace ${i} (${busy.ns}, primary ${busy.port}): 100 jobs, script calls per primary ${delta.join(' / ')}\n`);
      assert.ok(mine >= 100 * 3, `its primary ran the jobs' scripts: ${delta.join(' / ')}`);
      for (const o of others) assert.ok(o * 5 < mine, `the other primaries stayed near idle: ${delta.join(' / ')}`);
    }
    for (const { port, ns } of spaces) {
      for (const node of primaries) {
        const [, keys] = await node.scan('0', 'MATCH', `{${s.prefix}/${ns}}*`, 'COUNT', 100_000);
        assert.equal(keys.length > 0, node.options.port === port, `the keys of namespace ${ns} are on ${port} only`);
      }
    }
  });
});
