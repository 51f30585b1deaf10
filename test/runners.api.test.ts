import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import type { JobRecord, RunnerView } from '@drover/core';
import { startServiceReady } from './helpers/processes.js';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runner(s: Stack, id: string): Promise<RunnerView> {
  return (await s.request<RunnerView>('GET', `/v1/runners/${id}`)).body;
}

function untilState(s: Stack, id: string, state: RunnerView['state']): Promise<RunnerView> {
  return until(`runner ${id} to become ${state}`, async () => {
    const r = await runner(s, id);
    return r.state === state && r;
  }, 10_000);
}

test('runners register, show what runs where, drain (not the last without force) and resume; a killed one goes offline', async (t) => {
  const s = await startStack(t, { runner: false });
  const tag = s.prefix.slice(5, 13);
  const [a, b] = [`${tag}-a`, `${tag}-b`];
  const env = { RUNNER_LEASE_MS: '1000', RUNNER_CONCURRENCY: '3', RUNNER_QUEUES: 'default,extra' };
  const procA = await startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: a });
  await startServiceReady(t, 'runner', s.prefix, { ...env, RUNNER_ID: b });

  const list = (await s.request<{ items: RunnerView[] }>('GET', '/v1/runners')).body.items;
  assert.deepEqual(list.map((r) => r.id).sort(), [a, b]);
  const ra = list.find((r) => r.id === a)!;
  assert.equal(ra.state, 'running');
  assert.equal(ra.pid, procA.pid);
  assert.deepEqual(ra.queues, ['default', 'extra']);
  assert.equal(ra.concurrency, 3);
  assert.match(ra.version ?? '', /^\d+\.\d+\.\d+/);
  assert.ok(ra.host && ra.startedAt);

  // What runs where.
  const long = await s.submit({ command: 'sleep 2' });
  const running = await s.waitFor(long.id, (j) => j.status === 'running');
  const host = running.runnerId!;
  const onHost = await s.request<{ items: JobRecord[] }>('GET', `/v1/runners/${host}/jobs`);
  assert.deepEqual(onHost.body.items.map((j) => j.id), [long.id]);

  // Drain the runner that holds the job: it finishes, and nothing new goes there.
  const drained = await s.request<RunnerView>('POST', `/v1/runners/${host}/drain`);
  assert.equal(drained.status, 200);
  assert.equal(drained.body.state, 'draining');
  assert.equal(drained.body.drainRequested, true);
  const other = host === a ? b : a;
  const later = await Promise.all([1, 2, 3, 4].map(() => s.submit({ command: 'true' })));
  for (const j of later) assert.equal((await s.waitFor(j.id)).runnerId, other, 'a drained runner takes no jobs');
  assert.equal((await s.waitFor(long.id)).status, 'succeeded', 'its running job finished');
  assert.equal((await runner(s, host)).state, 'draining', 'it stays up, drained');

  // The other one is now the last taking jobs: refused unless forced.
  const refused = await s.request<{ error: { code: string; details: { queues: string[] } } }>('POST', `/v1/runners/${other}/drain`);
  assert.equal(refused.status, 409);
  assert.deepEqual(refused.body.error.details.queues, ['default', 'extra']);
  assert.equal((await runner(s, other)).state, 'running');
  const forced = await s.request<RunnerView>('POST', `/v1/runners/${other}/drain?force=1`);
  assert.equal(forced.body.state, 'draining');
  const parked = await s.submit({ command: 'true' });
  await sleep(300);
  assert.equal((await s.waitFor(parked.id, () => true)).status, 'queued', 'no runner takes jobs');
  const resumed = await s.request<RunnerView>('POST', `/v1/runners/${host}/resume`);
  assert.equal(resumed.body.state, 'running');
  assert.equal((await s.waitFor(parked.id)).runnerId, host);
  await s.request('POST', `/v1/runners/${other}/resume`);
  await untilState(s, other, 'running');

  // kill -9: its registry entry expires and it shows offline.
  procA.kill('SIGKILL');
  await once(procA, 'exit');
  const gone = await untilState(s, a, 'offline');
  assert.deepEqual(gone.running, []);
  assert.equal((await s.request('POST', `/v1/runners/${a}/drain`)).status, 409);
  // The same story in the events stream.
  const events = await until('a runner.gone event', async () => {
    const items = (await s.request<{ items: { type: string; data: { runnerId: string } }[] }>('GET', '/v1/events?after=0-0&types=runner.*&limit=1000')).body.items;
    return items.some((e) => e.type === 'runner.gone') && items;
  }, 10_000, 100);
  const story = events.map((e) => `${e.type} ${e.data.runnerId === a ? 'a' : 'b'}`);
  assert.deepEqual(story.filter((x) => x.startsWith('runner.joined')).sort(), ['runner.joined a', 'runner.joined b']);
  const h = host === a ? 'a' : 'b';
  const o = host === a ? 'b' : 'a';
  assert.deepEqual(story.filter((x) => !x.startsWith('runner.joined')), [`runner.draining ${h}`, `runner.draining ${o}`, `runner.resumed ${h}`, `runner.resumed ${o}`, 'runner.gone a']);
  assert.equal((await s.request('GET', '/v1/runners/nope')).status, 404);
  assert.equal((await s.request('POST', `/v1/runners/${b}/drain`, undefined, s.tokens.read)).status, 403);
});
