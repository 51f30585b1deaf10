import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRedis } from '@drover/core';
import { REDIS_URL, startStack } from './helpers/stack.js';

/** Every route, with its path parameters as placeholders. */
const ROUTES: [string, string][] = [
  ['POST', '/v1/jobs'],
  ['POST', '/v1/jobs/batch'],
  ['GET', '/v1/jobs'],
  ['GET', '/v1/jobs/:id'],
  ['GET', '/v1/jobs/:id/logs'],
  ['POST', '/v1/jobs/:id/cancel'],
  ['POST', '/v1/schedules'],
  ['GET', '/v1/schedules'],
  ['GET', '/v1/schedules/:id'],
  ['PUT', '/v1/schedules/:id'],
  ['DELETE', '/v1/schedules/:id'],
  ['POST', '/v1/schedules/:id/enable'],
  ['POST', '/v1/schedules/enable'],
  ['POST', '/v1/schedules/:id/trigger'],
  ['GET', '/v1/schedules/:id/runs'],
];

// Bodies that look like the real thing some of the time, so validation deep inside is reached too.
const jobLike = fc.record(
  {
    command: fc.oneof(fc.string(), fc.constant('true')),
    argv: fc.array(fc.oneof(fc.string(), fc.integer())),
    queue: fc.oneof(fc.string(), fc.constant('default')),
    env: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(null))),
    timeoutMs: fc.oneof(fc.integer(), fc.double(), fc.string()),
    retries: fc.oneof(fc.integer(), fc.string()),
    runAt: fc.oneof(fc.string(), fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
    delayMs: fc.oneof(fc.integer(), fc.constant(-1)),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.jsonValue(),
  jobLike,
  fc.record({ jobs: fc.array(jobLike, { maxLength: 3 }) }),
  fc.record({ name: fc.string(), cron: fc.string(), timezone: fc.string(), job: jobLike, names: fc.array(fc.string()) }, { requiredKeys: [] }),
);
const pathParam = fc.oneof(fc.string(), fc.constant('01ARZ3NDEKTSV4RRFFQ69G5FAV'), fc.constant('x'.repeat(300)));
const query = fc.dictionary(fc.constantFrom('queue', 'status', 'cursor', 'limit', 'kill', 'follow', 'x'), fc.string(), { maxKeys: 4 });

test('fuzz: arbitrary bodies, path parameters and query strings on every route never get a 5xx, and rejections store nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const stored = async (): Promise<number> =>
    (await redis.zcard(`{${s.prefix}}:idx:all`)) + (await redis.zcard(`{${s.prefix}}:schedules`));
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES), pathParam, query, body, fc.boolean(), async ([method, path], param, q, b, raw) => {
      const url = `${path.replace(':id', encodeURIComponent(param))}?${new URLSearchParams(q).toString()}`;
      const before = await stored();
      const res = await s.api.app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${s.tokens.admin}`, ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
        ...(method === 'GET' || method === 'DELETE' ? {} : { payload: raw ? JSON.stringify(b).slice(0, -1) : JSON.stringify(b) }),
      });
      assert.ok(res.statusCode < 500, `${method} ${url} ${JSON.stringify(b)?.slice(0, 200)} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
      if (res.statusCode >= 400) {
        const parsed = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } };
        assert.equal(typeof parsed.error?.code, 'string', res.body);
        assert.equal(typeof parsed.error?.message, 'string', res.body);
        assert.equal(await stored(), before, `a rejected ${method} ${path} stored something`);
      }
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 600) },
  );
});
