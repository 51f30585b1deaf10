import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRedis } from '@drover/core';
import { REDIS_URL, startStack, keysOf } from './helpers/stack.js';

interface Case {
  name: string;
  method?: string;
  path?: string;
  body?: string;
  contentType?: string;
  status: number;
  code: string;
  /** A field name the message must mention. */
  mentions?: string;
}

const J = (v: unknown): string => JSON.stringify(v);
const big = 'x'.repeat(1024 * 1024 + 10);

const CASES: Case[] = [
  { name: 'not JSON', body: '{"command": "true"', status: 400, code: 'INVALID_JSON' },
  { name: 'empty JSON body: no body, which a submission needs', body: '', status: 400, code: 'VALIDATION', mentions: 'a JSON body is required' },
  { name: 'JSON array instead of object', body: '[1,2]', status: 400, code: 'VALIDATION' },
  { name: 'missing command', body: J({ queue: 'default' }), status: 400, code: 'VALIDATION', mentions: 'command' },
  { name: 'command and argv', body: J({ command: 'true', argv: ['true'] }), status: 400, code: 'VALIDATION', mentions: 'argv' },
  { name: 'command of wrong type', body: J({ command: 42 }), status: 400, code: 'VALIDATION', mentions: 'command' },
  { name: 'empty command', body: J({ command: '' }), status: 400, code: 'VALIDATION', mentions: 'command' },
  { name: 'empty argv', body: J({ argv: [] }), status: 400, code: 'VALIDATION', mentions: 'argv' },
  { name: 'argv with a number', body: J({ argv: ['echo', 1] }), status: 400, code: 'VALIDATION', mentions: 'argv/1' },
  { name: 'unknown field', body: J({ command: 'true', comand: 'typo' }), status: 400, code: 'VALIDATION', mentions: 'comand' },
  { name: 'negative timeout', body: J({ command: 'true', timeoutMs: -5 }), status: 400, code: 'VALIDATION', mentions: 'timeoutMs' },
  { name: 'timeout as string', body: J({ command: 'true', timeoutMs: '5' }), status: 400, code: 'VALIDATION', mentions: 'timeoutMs' },
  { name: 'fractional timeout', body: J({ command: 'true', timeoutMs: 1.5 }), status: 400, code: 'VALIDATION', mentions: 'timeoutMs' },
  { name: 'env value not a string', body: J({ command: 'true', env: { A: 1 } }), status: 400, code: 'VALIDATION', mentions: 'env' },
  { name: 'env not an object', body: J({ command: 'true', env: ['A=1'] }), status: 400, code: 'VALIDATION', mentions: 'env' },
  { name: 'env key invalid', body: J({ command: 'true', env: { 'A-B': 'x' } }), status: 400, code: 'VALIDATION', mentions: 'env' },
  { name: 'bad queue name', body: J({ command: 'true', queue: '../etc' }), status: 400, code: 'VALIDATION', mentions: 'queue' },
  { name: 'relative cwd', body: J({ command: 'true', cwd: 'tmp' }), status: 400, code: 'VALIDATION', mentions: 'cwd' },
  { name: 'negative retries', body: J({ command: 'true', retries: -1 }), status: 400, code: 'VALIDATION', mentions: 'retries' },
  { name: 'backoff without delay', body: J({ command: 'true', backoff: { type: 'fixed' } }), status: 400, code: 'VALIDATION', mentions: 'delayMs' },
  { name: 'NUL in command', body: J({ command: 'echo \u0000' }), status: 400, code: 'VALIDATION', mentions: 'command' },
  { name: 'body over the limit', body: J({ command: big }), status: 413, code: 'BODY_TOO_LARGE' },
  { name: 'unsupported content type', body: '<job/>', contentType: 'application/xml', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  { name: 'batch not a list', path: '/v1/jobs/batch', body: J({ jobs: { command: 'true' } }), status: 400, code: 'VALIDATION', mentions: 'jobs' },
  { name: 'batch empty', path: '/v1/jobs/batch', body: J({ jobs: [] }), status: 400, code: 'VALIDATION', mentions: 'jobs' },
  {
    name: 'batch with one bad item names its index',
    path: '/v1/jobs/batch',
    body: J({ jobs: [{ command: 'true' }, { command: 'true' }, { command: 'true', timeoutMs: -1 }] }),
    status: 400,
    code: 'VALIDATION',
    mentions: 'jobs/2/timeoutMs',
  },
  {
    name: 'batch item with neither command nor argv names its index',
    path: '/v1/jobs/batch',
    body: J({ jobs: [{ command: 'true' }, { queue: 'default' }] }),
    status: 400,
    code: 'VALIDATION',
    mentions: 'jobs/1/command',
  },
  { name: 'unknown status filter', method: 'GET', path: '/v1/jobs?status=exploded', status: 400, code: 'VALIDATION', mentions: 'status' },
  { name: 'limit not a number', method: 'GET', path: '/v1/jobs?limit=lots', status: 400, code: 'VALIDATION', mentions: 'limit' },
  { name: 'limit too large', method: 'GET', path: '/v1/jobs?limit=100000', status: 400, code: 'VALIDATION', mentions: 'limit' },
  { name: 'bad job list cursor', method: 'GET', path: '/v1/jobs?cursor=garbage', status: 400, code: 'BAD_CURSOR' },
  { name: 'unknown query parameter', method: 'GET', path: '/v1/jobs?colour=red', status: 400, code: 'VALIDATION', mentions: 'colour' },
  { name: 'malformed job id', method: 'GET', path: '/v1/jobs/not-an-id', status: 400, code: 'VALIDATION', mentions: 'id' },
  { name: 'unknown route', method: 'GET', path: '/v1/nothing-here', status: 404, code: 'NOT_FOUND' },
];

test('every malformed request gets a 4xx naming the problem, and nothing is stored or queued', async (t) => {
  const s = await startStack(t, { runner: false });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  for (const c of CASES) {
    const res = await fetch(`${s.url}${c.path ?? '/v1/jobs'}`, {
      method: c.method ?? 'POST',
      headers: { authorization: `Bearer ${s.tokens.admin}`, ...(c.body !== undefined ? { 'content-type': c.contentType ?? 'application/json' } : {}) },
      ...(c.body !== undefined ? { body: c.body } : {}),
    });
    const body = (await res.json()) as { error?: { code: string; message: string } };
    assert.equal(res.status, c.status, `${c.name}: ${JSON.stringify(body)}`);
    assert.equal(body.error?.code, c.code, c.name);
    assert.equal(typeof body.error?.message, 'string', c.name);
    if (c.mentions) assert.ok(body.error.message.includes(c.mentions), `${c.name}: "${body.error.message}" should mention ${c.mentions}`);
  }
  const keys = await keysOf(redis, `{${s.prefix}}*`);
  // The events stream exists from the start (the runner joined); it must hold no job event. Runner-load samples
  // (the dashboard's stats) are written whatever the requests; per-queue stats would come from job events.
  const jobKeys = keys.filter((k) => !k.includes(':bull:') && !k.endsWith(':events') && !/:stats:(runners|sampled):/.test(k));
  assert.deepEqual(jobKeys, [], 'no job record or index was written');
  const types = (await redis.xrange(`{${s.prefix}}:events`, '-', '+')).map(([, f]) => f[1]);
  assert.ok(types.every((t) => t?.startsWith('runner.')), `only runner events: ${types.join(',')}`);
});

test('a bad log cursor is a 400; curl-style form-encoded JSON is accepted', async (t) => {
  const s = await startStack(t, { runner: false });
  const job = await s.submit({ command: 'true' });
  const bad = await s.request<{ error: { code: string } }>('GET', `/v1/jobs/${job.id}/logs?cursor=nope`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'BAD_CURSOR');
  // `curl -d '{...}'` labels its body application/x-www-form-urlencoded.
  const res = await fetch(`${s.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: '{"command":"echo from curl"}',
  });
  assert.equal(res.status, 201);
});
