import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Cluster } from 'ioredis';
import { STORE_SCRIPTS, lua, type JobRecord } from '@drover/core';
import { primaryPortOf, startLocalCluster, type LocalCluster } from './helpers/redis-cluster.js';
import { BROKERS, startStack, testPrefixWhere } from './helpers/stack.js';

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

test('Redis Cluster: three deployments (prefixes) land on three primaries; jobs of one load its primary only', { timeout: 120_000 }, async (t) => {
  const cluster = await startLocalCluster(t, 3, false);
  const client = clusterClient(t, cluster);
  await client.connect();
  const primaries = client.nodes('master');
  assert.equal(primaries.length, 3);
  // In a subtest: its stacks close before the cluster stops (the outer test's after-hooks).
  await t.test('one deployment per primary', async (tt) => {
    const stacks = [];
    for (const node of primaries) {
      const port = node.options.port!;
      const prefix = await testPrefixWhere(async (p) => (await primaryPortOf(cluster, `{${p}}`)) === port, cluster.url);
      // A slow tick: idle services issue few commands, so the counts below are the jobs'.
      stacks.push({ port, s: await startStack(tt, { prefix, redisUrl: cluster.url, env: { SCHEDULER_TICK_MS: '1000', RUNNER_CONCURRENCY: '8' } }) });
    }
    assert.deepEqual(new Set(stacks.map((x) => x.port)).size, 3, 'one deployment per primary');
    for (const [i, busy] of stacks.entries()) {
      const before = await Promise.all(primaries.map(scriptCalls));
      const res = await busy.s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 100 }, () => ({ command: 'true' })) });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      for (const j of res.body.jobs) assert.equal((await busy.s.waitFor(j.id)).status, 'succeeded');
      const after = await Promise.all(primaries.map(scriptCalls));
      const delta = after.map((a, k) => a - before[k]!);
      const mine = delta[primaries.findIndex((n) => n.options.port === busy.port)]!;
      const others = delta.filter((_, k) => primaries[k]!.options.port !== busy.port);
      process.stdout.write(`# deployment ${i} (primary ${busy.port}): 100 jobs, script calls per primary ${delta.join(' / ')}\n`);
      assert.ok(mine >= 100 * 3, `its primary ran the jobs' scripts: ${delta.join(' / ')}`);
      for (const o of others) assert.ok(o * 5 < mine, `the other primaries stayed near idle: ${delta.join(' / ')}`);
    }
    for (const { port, s } of stacks) {
      for (const node of primaries) {
        const [, keys] = await node.scan('0', 'MATCH', `{${s.prefix}}*`, 'COUNT', 100_000);
        assert.equal(keys.length > 0, node.options.port === port, `the keys of ${s.prefix} are on ${port} only`);
      }
    }
  });
});
