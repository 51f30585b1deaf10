import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { createRedis, type JobRecord } from '@drover/core';
import type { Redis } from 'ioredis';
import { startStack, type Stack, type StackOptions, keysOf } from './helpers/stack.js';

interface Answer<T> {
  status: number;
  replayed: boolean;
  body: T;
}
type ErrorBody = { error: { code: string; message: string; details?: unknown } };

/** A POST with an Idempotency-Key (or without, for key === null). */
async function post<T = JobRecord>(s: Stack, path: string, body: unknown, key: string | null, token = s.tokens.submit): Promise<Answer<T>> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  if (key !== null) headers['idempotency-key'] = key;
  const res = await fetch(`${s.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, replayed: res.headers.get('idempotent-replayed') === 'true', body: (await res.json()) as T };
}

/** The stack (no runner: jobs stay where they were created) and a Redis connection to count what it holds. */
async function setup(t: TestContext, opts: StackOptions = {}): Promise<{ s: Stack; redis: Redis; jobCount: () => Promise<number> }> {
  const s = await startStack(t, { runner: false, ...opts });
  const redis = createRedis(s.config.redisUrl, 'worker');
  t.after(() => redis.quit().then(() => undefined));
  return { s, redis, jobCount: () => redis.zcard(`{${s.prefix}}:idx:all`) };
}

const key = (): string => `key-${randomUUID()}`;

test('the same key and body answers the first result (same status, same id, marked replayed) and creates nothing', async (t) => {
  const { s, jobCount } = await setup(t);
  const k = key();
  const first = await post(s, '/v1/jobs', { command: 'echo one' }, k);
  assert.equal(first.status, 201);
  assert.equal(first.replayed, false);
  const again = await post(s, '/v1/jobs', { command: 'echo one' }, k);
  assert.deepEqual([again.status, again.replayed, again.body.id], [201, true, first.body.id]);
  // Keys of an object in another order are the same body.
  const reordered = await post(s, '/v1/jobs', { labels: { b: '2', a: '1' }, command: 'echo two' }, 'ordered');
  const same = await post(s, '/v1/jobs', { command: 'echo two', labels: { a: '1', b: '2' } }, 'ordered');
  assert.equal(same.body.id, reordered.body.id);
  assert.equal(await jobCount(), 2);
  // Control: without a key the same body twice is two jobs, so the count above can see a duplicate.
  await post(s, '/v1/jobs', { command: 'echo one' }, null);
  await post(s, '/v1/jobs', { command: 'echo one' }, null);
  assert.equal(await jobCount(), 4);
});

test('a deduplicated submission replays as 200 with the job that held the dedupe key', async (t) => {
  const { s, jobCount } = await setup(t);
  const held = await post(s, '/v1/jobs', { command: 'echo d', dedupeKey: 'd1' }, null);
  const k = key();
  const dup = await post(s, '/v1/jobs', { command: 'echo d', dedupeKey: 'd1' }, k);
  const again = await post(s, '/v1/jobs', { command: 'echo d', dedupeKey: 'd1' }, k);
  assert.deepEqual([dup.status, again.status, again.replayed, again.body.id], [200, 200, true, held.body.id]);
  assert.equal(await jobCount(), 1);
});

test('the same key with another body or on another route is 409 IDEMPOTENCY_KEY_REUSED and creates nothing', async (t) => {
  const { s, jobCount } = await setup(t);
  const k = key();
  await post(s, '/v1/jobs', { command: 'echo a' }, k);
  const other = await post<ErrorBody>(s, '/v1/jobs', { command: 'echo b' }, k);
  assert.equal(other.status, 409);
  assert.equal(other.body.error.code, 'IDEMPOTENCY_KEY_REUSED');
  const route = await post<ErrorBody>(s, '/v1/jobs/batch', { jobs: [{ command: 'echo a' }] }, k);
  assert.deepEqual([route.status, route.body.error.code], [409, 'IDEMPOTENCY_KEY_REUSED']);
  assert.equal(await jobCount(), 1);
});

test('keys are per token: another tenant with the same key and body gets its own job', async (t) => {
  const { s, jobCount } = await setup(t);
  const other = randomBytes(24).toString('base64url');
  s.registry.add(other, { name: 'tenant-b', scope: 'submit' });
  const k = key();
  const a = await post(s, '/v1/jobs', { command: 'echo t' }, k);
  const b = await post(s, '/v1/jobs', { command: 'echo t' }, k, other);
  assert.deepEqual([b.status, b.replayed], [201, false]);
  assert.notEqual(b.body.id, a.body.id);
  // And each replays its own.
  assert.equal((await post(s, '/v1/jobs', { command: 'echo t' }, k, other)).body.id, b.body.id);
  assert.equal((await post(s, '/v1/jobs', { command: 'echo t' }, k)).body.id, a.body.id);
  assert.equal(await jobCount(), 2);
  // A token whose queues were narrowed since does not get the job back through a replay: 404 as for any look at it.
  const narrow = randomBytes(24).toString('base64url');
  s.registry.add(narrow, { name: 'tenant-c', scope: 'submit', queues: ['a'] });
  assert.equal((await post(s, '/v1/jobs', { queue: 'a', command: 'echo n' }, k, narrow)).status, 201);
  s.registry.add(narrow, { name: 'tenant-c', scope: 'submit', queues: ['b'] });
  assert.equal((await post<ErrorBody>(s, '/v1/jobs', { queue: 'a', command: 'echo n' }, k, narrow)).status, 404);
  assert.equal(await jobCount(), 3);
});

test('20 identical requests at once create exactly one job; all answer it', async (t) => {
  const { s, jobCount } = await setup(t);
  const k = key();
  const answers = await Promise.all(Array.from({ length: 20 }, () => post(s, '/v1/jobs', { command: 'echo race', replicas: 2 }, k)));
  assert.deepEqual([...new Set(answers.map((a) => a.status))], [201]);
  assert.equal(new Set(answers.map((a) => a.body.id)).size, 1);
  assert.equal(answers.filter((a) => !a.replayed).length, 1, 'one created, the others replayed');
  assert.equal(await jobCount(), 2, 'one job with its two replicas');
});

test('a malformed Idempotency-Key is 400 VALIDATION with the usual error shape; nothing is created', async (t) => {
  const { s, jobCount } = await setup(t);
  for (const bad of ['x'.repeat(256), 'caf\u00e9', 'tab\there']) {
    const res = await post<ErrorBody>(s, '/v1/jobs', { command: 'echo bad' }, bad);
    assert.equal(res.status, 400, bad);
    assert.equal(res.body.error.code, 'VALIDATION');
    assert.match(res.body.error.message, /idempotency-key/);
  }
  // 255 printable characters, spaces inside included, are a key.
  assert.equal((await post(s, '/v1/jobs', { command: 'echo ok' }, `a b${'~'.repeat(252)}`)).status, 201);
  assert.equal(await jobCount(), 1);
});

test('a refused request binds nothing: the same key succeeds once the problem is fixed', async (t) => {
  const { s, jobCount } = await setup(t);
  const k = key();
  const refused = await post<ErrorBody>(s, '/v1/jobs', { command: 'echo x', dependsOn: ['01HZZZZZZZZZZZZZZZZZZZZZZZ'] }, k);
  assert.equal(refused.status, 400);
  const fixed = await post(s, '/v1/jobs', { command: 'echo x' }, k);
  assert.deepEqual([fixed.status, fixed.replayed], [201, false]);
  assert.equal(await jobCount(), 1);
});

test('batch: a replay answers the same jobs in the same shape', async (t) => {
  const { s, jobCount } = await setup(t);
  const k = key();
  const body = { jobs: [{ command: 'echo 1' }, { command: 'echo 2', replicas: 3 }, { command: 'echo 3' }] };
  const first = await post<{ jobs: (JobRecord & { replicaJobs?: string[] })[] }>(s, '/v1/jobs/batch', body, k);
  const again = await post<{ jobs: (JobRecord & { replicaJobs?: string[] })[] }>(s, '/v1/jobs/batch', body, k);
  assert.deepEqual([first.status, again.status, again.replayed], [201, 201, true]);
  assert.deepEqual(again.body.jobs.map((j) => j.id), first.body.jobs.map((j) => j.id));
  assert.deepEqual(again.body.jobs[1]!.replicaJobs, first.body.jobs[1]!.replicaJobs);
  assert.equal(await jobCount(), 5);
  assert.equal((await post<ErrorBody>(s, '/v1/jobs/batch', { jobs: [{ command: 'echo 1' }] }, k)).status, 409);
});

test('workflow create: a replay answers the same workflow and step jobs; one workflow is stored', async (t) => {
  const { s, redis, jobCount } = await setup(t);
  const k = key();
  const body = { name: 'wf', steps: [{ name: 'a', job: { command: 'echo a' } }, { name: 'b', job: { command: 'echo b' }, dependsOn: ['a'] }] };
  type View = { id: string; steps: { name: string; jobId: string }[] };
  const first = await post<View>(s, '/v1/workflows', body, k);
  const again = await post<View>(s, '/v1/workflows', body, k);
  assert.deepEqual([first.status, again.status, again.replayed], [201, 201, true]);
  assert.equal(again.body.id, first.body.id);
  assert.deepEqual(again.body.steps.map((x) => x.jobId), first.body.steps.map((x) => x.jobId));
  assert.equal(await redis.zcard(`{${s.prefix}}:wf:idx`), 1);
  assert.equal(await jobCount(), 2);
  assert.equal((await post<ErrorBody>(s, '/v1/workflows', { ...body, name: 'other' }, k)).status, 409);
  // Without a key the workflow record is stored with its jobs as well.
  const plain = await post<View>(s, '/v1/workflows', body, null);
  assert.equal((await s.request<View>('GET', `/v1/workflows/${plain.body.id}`)).body.steps.length, 2);
});

test('schedule trigger: a replay answers the same job and fires nothing; another body is 409', async (t) => {
  const { s, jobCount } = await setup(t);
  const created = await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: 'echo "$1"' } });
  assert.equal(created.status, 201);
  const k = key();
  const first = await post(s, '/v1/schedules/nightly/trigger', { args: ['x'] }, k);
  const again = await post(s, '/v1/schedules/nightly/trigger', { args: ['x'] }, k);
  assert.deepEqual([first.status, again.status, again.replayed, again.body.id], [201, 201, true, first.body.id]);
  const runs = await s.request<{ items: JobRecord[] }>('GET', '/v1/schedules/nightly/runs');
  assert.deepEqual(runs.body.items.map((j) => j.id), [first.body.id]);
  assert.equal((await post<ErrorBody>(s, '/v1/schedules/nightly/trigger', { args: ['y'] }, k)).status, 409);
  assert.equal(await jobCount(), 1);
});

test('a binding is kept for DROVER_IDEMPOTENCY_TTL_MS (24 h by default), then the key is new again', async (t) => {
  const { s, redis } = await setup(t);
  await post(s, '/v1/jobs', { command: 'echo ttl' }, 'ttl-key');
  const bindings = await keysOf(redis, `{${s.prefix}}:idem:*`);
  assert.equal(bindings.length, 1);
  const ttl = await redis.pttl(bindings[0]!);
  assert.ok(ttl > 23 * 3_600_000 && ttl <= 24 * 3_600_000, `PTTL ${ttl}`);

  // Real time, once: a short TTL passes and the same key creates a new job.
  const short = await setup(t, { env: { DROVER_IDEMPOTENCY_TTL_MS: '1000' } });
  const first = await post(short.s, '/v1/jobs', { command: 'echo ttl' }, 'ttl-key');
  const binding = (await keysOf(short.redis, `{${short.s.prefix}}:idem:*`))[0]!;
  while ((await short.redis.exists(binding)) === 1) await new Promise((r) => setTimeout(r, 100));
  const later = await post(short.s, '/v1/jobs', { command: 'echo ttl' }, 'ttl-key');
  assert.deepEqual([later.status, later.replayed], [201, false]);
  assert.notEqual(later.body.id, first.body.id);
});

test('OpenAPI declares the header on the four submitting routes', async (t) => {
  const { s } = await setup(t, { scheduler: false });
  const doc = (await s.request<{ paths: Record<string, Record<string, { parameters?: { in: string; name: string }[] }>> }>('GET', '/docs/json')).body;
  for (const path of ['/v1/jobs', '/v1/jobs/batch', '/v1/workflows', '/v1/schedules/{name}/trigger']) {
    const params = doc.paths[path]?.post?.parameters ?? [];
    assert.ok(params.some((p) => p.in === 'header' && p.name === 'idempotency-key'), `${path} declares Idempotency-Key`);
  }
});
