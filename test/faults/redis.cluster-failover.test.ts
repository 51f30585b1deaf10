import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { isTerminal, type JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { audit, executions, markerDir } from '../helpers/audit.js';
import { primaryPortOf, startLocalCluster, type LocalCluster } from '../helpers/redis-cluster.js';
import { BROKERS, startStack, type Stack } from '../helpers/stack.js';
import { until } from '../helpers/until.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LEASE_MS = 1000;
const BEFORE = 30;
const AFTER = 20;
const JOB = { retries: 2, onLost: 'retry' };

/** A plain (not cluster) connection to one node: it never follows the cluster to another node. */
function nodeClient(port: number): Redis {
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 1000 });
  client.on('error', () => undefined);
  return client;
}

/** The cluster as the nodes still up see it: primaryPortOf asks the first node, which must not be the dead one. */
function withoutNode(cluster: LocalCluster, port: number): LocalCluster {
  return { ...cluster, nodes: cluster.nodes.filter((n) => !n.endsWith(`:${port}`)) };
}

/** One node's INFO replication, or why it could not be read. */
async function replicationOf(port: number): Promise<string> {
  const client = nodeClient(port);
  try {
    return await client.info('replication');
  } catch (err) {
    return (err as Error).message;
  } finally {
    client.disconnect();
  }
}

/**
 * The port of the primary serving `tag`'s slot once it has a replica online: a fresh cluster's replicas may still be
 * in their first sync, and the slot is asked for again each time (a node slow to answer right after creation can
 * be failed over before the test starts). If no replica comes, every node's replication state and the end of its
 * log go into the failure.
 */
async function primaryWithReplicaOnline(t: TestContext, cluster: LocalCluster, tag: string): Promise<number> {
  let port = 0;
  try {
    await until(`the primary of ${tag} with a replica online`, async () => {
      port = await primaryPortOf(cluster, tag).catch(() => 0);
      if (port === 0) return false;
      return /slave\d+:.*state=online/.test(await replicationOf(port));
    }, 30_000, 100);
    return port;
  } catch (err) {
    for (const [p, log] of cluster.logs) {
      const info = await replicationOf(p);
      const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n') : '(no log)';
      t.diagnostic(`node ${p}${p === port ? ' (the primary last named)' : ''}: ${info.replace(/\r?\n/g, ' ')}\n${tail}`);
    }
    throw err;
  }
}

/**
 * Makes the primary's replica acknowledge everything written so far; how many replicas did. WAIT counts the
 * caller's own writes, so the client writes once first: the replication stream is ordered, so the replica that
 * acknowledges that write has every write before it.
 */
async function replicateAcknowledged(port: number, tag: string): Promise<number> {
  const client = nodeClient(port);
  try {
    await client.set(`${tag}:test-failover-wait`, '1');
    return Number(await client.call('WAIT', '1', '2000'));
  } finally {
    client.disconnect();
  }
}

/**
 * Whether the cluster is ok and which port serves a key's slot, as one node says over a plain connection: a
 * cluster client (primaryPortOf's) may send CLUSTER SLOTS to the dead primary while it is still listed, and wait.
 */
async function slotView(cluster: LocalCluster, key: string): Promise<{ ok: boolean; servedBy: number | undefined } | undefined> {
  const client = nodeClient(Number(cluster.nodes[0]!.split(':')[1]));
  try {
    const ok = /cluster_state:ok/.test(String(await client.cluster('INFO')));
    const slot = Number(await client.cluster('KEYSLOT', key));
    const ranges = await client.cluster('SLOTS');
    return { ok, servedBy: ranges.find((r) => slot >= r[0] && slot <= r[1])?.[2]?.[1] };
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/** kill -9 the primary, then waits (bounded) until the cluster is ok with the slot on another node; how long it took. */
async function killPrimaryAndAwaitFailover(cluster: LocalCluster, port: number, key: string): Promise<number> {
  const primary = cluster.processes.get(port);
  assert.ok(primary, `no process for port ${port}`);
  const exited = once(primary, 'exit');
  const killedAt = Date.now();
  primary.kill('SIGKILL');
  await exited;
  const survivors = withoutNode(cluster, port);
  await until('a replica to take over the slot', async () => {
    const view = await slotView(survivors, key);
    return view && view.ok && view.servedBy !== undefined && view.servedBy !== port;
  }, 60_000, 100);
  return Date.now() - killedAt;
}

interface Submissions {
  accepted: string[];
  /** HTTP status (or 'timeout' / 'network') -> count. */
  statuses: Map<number | string, number>;
  /** What the API answered to the first refusals, for the failure message. */
  refusals: string[];
  /** The longest a submission took to be answered (reported, not asserted: no timing assertions). */
  slowestMs: number;
}

const statusesOf = (sub: Submissions): string => `${JSON.stringify(Object.fromEntries(sub.statuses))} (slowest ${sub.slowestMs} ms)`;
const noSubmissions = (): Submissions => ({ accepted: [], statuses: new Map(), refusals: [], slowestMs: 0 });

/** One bounded submission; a refusal is counted and kept, not retried. */
async function submitOnce(s: Stack, command: string, into: Submissions): Promise<void> {
  const count = (k: number | string): void => void into.statuses.set(k, (into.statuses.get(k) ?? 0) + 1);
  const started = Date.now();
  try {
    const res = await fetch(`${s.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.tokens.submit}`, 'content-type': 'application/json' },
      body: JSON.stringify({ command, ...JOB }),
      signal: AbortSignal.timeout(10_000),
    });
    count(res.status);
    const text = await res.text();
    if (res.status === 201) into.accepted.push((JSON.parse(text) as { id: string }).id);
    else if (into.refusals.length < 5) into.refusals.push(`${res.status} ${text}`);
  } catch (err) {
    count((err as Error).name === 'TimeoutError' ? 'timeout' : 'network');
  }
  into.slowestMs = Math.max(into.slowestMs, Date.now() - started);
}

/** Four clients submitting, one job at a time each, until `stop` says so. */
function submitUntil(s: Stack, command: string, stop: () => boolean): { sub: Submissions; done: Promise<void> } {
  const sub = noSubmissions();
  const client = async (): Promise<void> => {
    while (!stop()) {
      await submitOnce(s, command, sub);
      await sleep(50);
    }
  };
  return { sub, done: Promise.all([client(), client(), client(), client()]).then(() => undefined) };
}

/** `count` submissions, each refused one tried again later as a client would, for at most 60 s. */
async function submitRetrying(s: Stack, count: number, command: string): Promise<Submissions> {
  const sub = noSubmissions();
  const deadline = Date.now() + 60_000;
  while (sub.accepted.length < count) {
    assert.ok(Date.now() < deadline, `submissions after the failover not accepted within 60 s: ${statusesOf(sub)} ${sub.refusals.join(' | ')}`);
    const before = sub.accepted.length;
    await submitOnce(s, command, sub);
    if (sub.accepted.length === before) await sleep(100);
  }
  return sub;
}

/** A refused submission must be a 503 at once: no 500, no hang, no dropped connection. */
function assertOnlyAcceptedOrUnavailable(sub: Submissions, when: string): void {
  const other = [...sub.statuses.keys()].filter((k) => k !== 201 && k !== 503);
  assert.deepEqual(other, [], `${when}: only 201 and 503 expected: ${statusesOf(sub)} ${sub.refusals.join(' | ')}`);
}

/** Waits (bounded) for every job to end, so that the audit after it does not wait job by job. */
async function untilAllEnded(s: Stack, ids: string[]): Promise<void> {
  await until('every accepted job to end', async () => {
    const jobs = await Promise.all(ids.map(async (id) => (await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body));
    return jobs.every((j) => isTerminal(j.status));
  }, 90_000, 250).catch(() => undefined); // the audit says which did not
}

async function failoverScenario(t: TestContext, cluster: LocalCluster, broker: 'bullmq' | 'rabbitmq'): Promise<void> {
  const s = await startStack(t, { broker, redisUrl: cluster.url, env: { RUNNER_CONCURRENCY: '4', RUNNER_LEASE_MS: String(LEASE_MS) } });
  const markers = markerDir(t);
  const command = markers.command('sleep 0.2');
  const tag = `{${s.prefix}}`;
  const primary = await primaryWithReplicaOnline(t, cluster, tag);

  const before: string[] = [];
  for (let i = 0; i < BEFORE; i++) before.push((await s.submit({ command, ...JOB })).id);
  await until('jobs to run', async () => (await s.request<{ items: unknown[] }>('GET', '/v1/jobs?status=running&limit=10')).body.items.length >= 2);

  // Submissions go on while the primary dies and its replica takes over.
  let failedOver = false;
  const during = submitUntil(s, command, () => failedOver);
  assert.equal(await replicateAcknowledged(primary, tag), 1, 'the replica acknowledged every write before the kill');
  const failoverMs = await killPrimaryAndAwaitFailover(cluster, primary, tag).finally(() => (failedOver = true));
  await during.done;
  const newPrimary = await primaryPortOf(withoutNode(cluster, primary), tag);
  assert.notEqual(newPrimary, primary);
  const after = await submitRetrying(s, AFTER, command);

  const ids = [...before, ...during.sub.accepted, ...after.accepted];
  await untilAllEnded(s, ids);
  const a = await audit(s, `Redis Cluster: kill -9 the deployment's primary, its replica takes over [${broker}]`, ids, markers.dir, 1000);
  // A job that did not end is described before the assertion fails: its record, its events, when it was submitted.
  for (const id of a.notEnded) {
    const rec = (await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body;
    const events = (await s.request<{ items: unknown[] }>('GET', `/v1/events?after=0-0&limit=1000&job=${id}`)).body.items;
    const when = before.includes(id) ? 'before' : during.sub.accepted.includes(id) ? 'during' : 'after';
    t.diagnostic(`not ended: submitted ${when} the failover, ran ${executions(markers.dir).get(id) ?? 0} times; record ${JSON.stringify(rec)}; events ${JSON.stringify(events)}`);
  }
  t.diagnostic(`failover took ${failoverMs} ms (primary ${primary} -> ${newPrimary}); submissions during it ${statusesOf(during.sub)}, after it ${statusesOf(after)}; lost attempts ${a.lost}`);
  // Checked after the audit, so that its summary row is recorded whatever the refusals were.
  assertOnlyAcceptedOrUnavailable(during.sub, 'during the failover');
  assertOnlyAcceptedOrUnavailable(after, 'after the failover');
  assert.deepEqual(a.notEnded, [], 'every accepted job ended');
  assert.equal(a.succeeded, ids.length, 'every accepted job succeeded');
  assert.equal(a.missing, 0, 'every accepted job ran');
  assert.equal(a.duplicated, 0, 'a job ran again only for a lost attempt');
  // Each run is an attempt its record counts: no run the store forgot in the failover.
  const ran = executions(markers.dir);
  for (const id of ids) {
    const job = (await s.request<JobRecord>('GET', `/v1/jobs/${id}`)).body;
    assert.ok((ran.get(id) ?? 0) <= job.attempts, `${id} ran ${ran.get(id)} times in ${job.attempts} attempts`);
  }
}

for (const broker of BROKERS) {
  test(`Redis Cluster failover: kill -9 the primary holding the deployment's slot while jobs run and submissions go on; every 201 succeeds, none runs again unless its attempt was lost, refusals are 503 [${broker}]`, { timeout: 180_000 }, async (t) => {
    const cluster = await startLocalCluster(t, 3, true);
    // The stack in a subtest: its after-hooks (services closed, keys deleted) run before the cluster's.
    await t.test(broker, (tt) => failoverScenario(tt, cluster, broker));
  });
}
