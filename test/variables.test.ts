// Operator variables (PUT /v1/variables/:name): environment of every job started after a change, under the job's own
// env; names only in answers, never values; sealed at rest with DROVER_ENV_KEY; the runner reads them again only
// after a change notice (or when its copy is old), not for every job.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { createLogger, Keys, VariableStore } from '@drover/core';
import { OperatorEnv } from '../services/runner/src/operator-env.js';
import { REDIS_URL, startStack, testPrefix, deletePrefix, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface LogPage {
  items: { line: string }[];
}

/** Runs `command` as a job and answers its output. */
async function output(s: Stack, command: string, env?: Record<string, string>): Promise<string> {
  const job = await s.run({ command, ...(env ? { env } : {}) });
  assert.equal(job.status, 'succeeded', JSON.stringify(job));
  return (await s.request<LogPage>('GET', `/v1/jobs/${job.id}/logs`)).body.items.map((l) => l.line).join('\n');
}

test('a job started after PUT /v1/variables sees it, under its own env; a change and a delete reach the next job', async (t) => {
  const s = await startStack(t);
  // Control: nothing is set yet.
  assert.equal(await output(s, 'echo "[$GREETING]"'), '[]');
  assert.deepEqual((await s.request('PUT', '/v1/variables/GREETING', { value: 'hello' })).body, { name: 'GREETING' });
  assert.equal(await output(s, 'echo "[$GREETING]"'), '[hello]');
  assert.equal(await output(s, 'echo "[$GREETING]"', { GREETING: 'own' }), '[own]', "the job's own value wins");

  // The runner read the variables once for those jobs; the change notice makes the very next job see the new value.
  assert.equal((await s.request('PUT', '/v1/variables/GREETING', { value: 'changed' })).status, 200);
  assert.equal(await output(s, 'echo "[$GREETING]"'), '[changed]');
  assert.equal((await s.request('DELETE', '/v1/variables/GREETING')).status, 200);
  assert.equal(await output(s, 'echo "[$GREETING]"'), '[]');
  const again = await s.request<{ error: { code: string } }>('DELETE', '/v1/variables/GREETING');
  assert.deepEqual([again.status, again.body.error.code], [404, 'NOT_FOUND']);
});

test('no route answers a variable\'s value; bad names and values are 400 and change nothing; admin only, not for queue-restricted tokens', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const secret = `s3cret-${randomBytes(8).toString('hex')}`;
  assert.equal((await s.request('PUT', '/v1/variables/DB_PASSWORD', { value: secret })).status, 200);
  const job = await s.submit({ command: 'true', delayMs: 600_000 });
  for (const path of ['/v1/variables', `/v1/jobs/${job.id}`, '/v1/jobs', '/v1/events?after=0-0', '/v1/whoami', '/v1/queues']) {
    const res = await s.request<unknown>('GET', path);
    assert.equal(res.status, 200, path);
    assert.ok(!JSON.stringify(res.body).includes(secret), `${path} returned the value`);
  }
  assert.deepEqual((await s.request('GET', '/v1/variables')).body, { names: ['DB_PASSWORD'] });

  const cases: [string, unknown, RegExp][] = [
    ['LD_PRELOAD', { value: '/tmp/x.so' }, /dynamic loader/],
    ['PATH', { value: '/tmp' }, /which program a name finds/],
    ['DROVER_JOB_ID', { value: 'x' }, /set by the runner/],
    ['1ABC', { value: 'x' }, /environment variable name/],
    ['A-B', { value: 'x' }, /environment variable name/],
    ['OK_NAME', { value: 'x'.repeat(65_537) }, /at most 65536 bytes/],
    ['OK_NAME', { value: 42 }, /value/],
    ['OK_NAME', {}, /value/],
  ];
  for (const [name, body, message] of cases) {
    const res = await s.request<{ error: { code: string; message: string } }>('PUT', `/v1/variables/${name}`, body);
    assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error.code, 'VALIDATION');
    assert.match(res.body.error.message, message);
  }
  assert.deepEqual((await s.request('GET', '/v1/variables')).body, { names: ['DB_PASSWORD'] }, 'nothing was stored');

  for (const tok of [s.tokens.submit, s.tokens.read]) assert.equal((await s.request('PUT', '/v1/variables/X', { value: '1' }, tok)).status, 403);
  const restricted = randomBytes(24).toString('base64url');
  s.registry.add(restricted, { name: 'ci-admin', scope: 'admin', queues: ['ci'] });
  for (const [method, path, body] of [['PUT', '/v1/variables/X', { value: '1' }], ['GET', '/v1/variables', undefined], ['DELETE', '/v1/variables/DB_PASSWORD', undefined]] as const) {
    assert.equal((await s.request(method, path, body, restricted)).status, 403, `${method} ${path}: variables reach every queue`);
  }
  assert.equal((await s.request('PUT', '/v1/variables/X', { value: '1' }, null)).status, 401);
  assert.deepEqual((await s.request('GET', '/v1/variables')).body, { names: ['DB_PASSWORD'] });
});

test('with DROVER_ENV_KEY a variable is sealed in Redis and reaches the job in plain text', async (t) => {
  const s = await startStack(t, { env: { DROVER_ENV_KEY: randomBytes(32).toString('base64') } });
  assert.equal((await s.request('PUT', '/v1/variables/TOKEN_FOR_JOBS', { value: 'plain-value' })).status, 200);
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.disconnect());
  const stored = await redis.hget(new Keys(s.prefix).variables, 'TOKEN_FOR_JOBS');
  assert.match(stored ?? '', /^enc:v1:/);
  assert.ok(!stored?.includes('plain-value'));
  assert.equal(await output(s, 'echo "[$TOKEN_FOR_JOBS]"'), '[plain-value]');
});

test('the runner\'s copy: one read for many starts, again after a notice, again once old; names no job may get are dropped', async (t) => {
  const prefix = testPrefix();
  const redis = new Redis(REDIS_URL);
  t.after(async () => {
    redis.disconnect();
    await deletePrefix(prefix);
  });
  const keys = new Keys(prefix);
  const store = new VariableStore(redis, keys);
  let reads = 0;
  const all = store.all.bind(store);
  store.all = async () => {
    reads++;
    return all();
  };
  const env = new OperatorEnv(store, createLogger('silent', 'test'), 60_000);
  await store.set('A', '1');
  for (let i = 0; i < 20; i++) assert.deepEqual(await env.current(), { A: '1' });
  assert.equal(reads, 1, 'twenty starts, one read');

  await store.set('A', '2');
  // Without the notice (the runner subscribes to it), the copy stays until it is old.
  assert.deepEqual(await env.current(), { A: '1' });
  env.invalidate();
  assert.deepEqual(await env.current(), { A: '2' });
  assert.equal(reads, 2);

  // Written past the API: a name the API refuses never reaches a job.
  await redis.hset(keys.variables, 'LD_PRELOAD', '/tmp/evil.so', 'DROVER_QUEUE', 'x');
  env.invalidate();
  assert.deepEqual(await env.current(), { A: '2' });

  const quick = new OperatorEnv(store, createLogger('silent', 'test'), 20);
  assert.deepEqual(await quick.current(), { A: '2' });
  await redis.hset(keys.variables, 'B', '3');
  await until('an old copy is read again', async () => (await quick.current()).B === '3');
});
