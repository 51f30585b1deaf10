import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Cluster } from 'ioredis';
import { STORE_SCRIPTS, lua, type JobRecord } from '@drover/core';
import { primaryPortOf, startLocalCluster, type LocalCluster } from './helpers/redis-cluster.js';
import { BROKERS, startStack } from './helpers/stack.js';

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
