// GET /v1/jobs as a search: filters combine (AND), on jobs in Redis and in the PostgreSQL archive alike; near-misses
// stay out; a filter that matches nothing answers a bounded page with a cursor instead of scanning everything.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { Redis } from 'ioredis';
import { freshDatabase, poolThenDrop } from './helpers/postgres.js';
import { REDIS_URL, startStack, type Stack, keysOf } from './helpers/stack.js';
import { until } from './helpers/until.js';

type Page = { items: JobRecord[]; nextCursor: string | null };

const page = async (s: Stack, q: string): Promise<Page> => {
  const res = await s.request<Page>('GET', `/v1/jobs?${q}`);
  assert.equal(res.status, 200, `${q}: ${JSON.stringify(res.body)}`);
  return res.body;
};

/** Every id the query finds, following cursors (bounded, so a broken cursor cannot loop forever). */
const all = async (s: Stack, q: string): Promise<string[]> => {
  const ids: string[] = [];
  let cursor = '';
  for (let i = 0; i < 200; i++) {
    const p = await page(s, `${q}${cursor}`);
    ids.push(...p.items.map((j) => j.id));
    if (!p.nextCursor) return ids;
    cursor = `&cursor=${p.nextCursor}`;
  }
  throw new Error(`${q}: more than 200 pages`);
};

/** The jobs every search below runs on, each a near-miss of `hit` in one respect. */
async function corpus(s: Stack) {
  const spec = { queue: 'search', command: 'echo needle-42', labels: { team: 'a', env: 'prod' }, name: 'nightly' };
  const early = await s.run(spec);
  await new Promise((r) => setTimeout(r, 5));
  const after = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const hit = await s.run(spec);
  const misses = {
    oneLabel: await s.run({ ...spec, labels: { team: 'a', env: 'dev' } }),
    otherName: await s.run({ ...spec, name: 'hourly' }),
    otherCommand: await s.run({ ...spec, command: 'echo needle-43' }),
    argv: await s.run({ ...spec, command: undefined, argv: ['echo', 'needle-42'] }),
  };
  await new Promise((r) => setTimeout(r, 5));
  const before = new Date().toISOString();
  return { early, hit, misses, after, before };
}

const combined = (c: Awaited<ReturnType<typeof corpus>>, runner: string): string =>
  `queue=search&label=team=a&label=env=prod&name=nightly&command=${encodeURIComponent('needle-42')}&runner=${runner}&createdAfter=${c.after}&createdBefore=${c.before}`;

test('search on Redis: labels AND, runner, name, command substring, creation times; near-misses stay out', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'search' } });
  const c = await corpus(s);
  const runner = s.config.runner.id;
  // All filters at once: the one job that passes every one, and its argv twin (its argv joined reads the same).
  assert.deepEqual(await all(s, combined(c, runner)), [c.misses.argv.id, c.hit.id]);
  // Each filter on its own excludes its near-miss.
  assert.ok(!(await all(s, 'queue=search&label=team=a&label=env=prod')).includes(c.misses.oneLabel.id), 'both labels must match');
  assert.ok((await all(s, 'queue=search&label=team=a')).includes(c.misses.oneLabel.id), 'control: one label matches it');
  assert.ok(!(await all(s, 'queue=search&name=nightly')).includes(c.misses.otherName.id));
  assert.ok(!(await all(s, 'queue=search&command=needle-42')).includes(c.misses.otherCommand.id));
  assert.ok((await all(s, 'queue=search&command=needle-4')).includes(c.misses.otherCommand.id), 'control: a substring');
  assert.ok(!(await all(s, `queue=search&createdAfter=${c.after}`)).includes(c.early.id));
  assert.ok((await all(s, `queue=search&createdBefore=${c.after}`)).includes(c.early.id), 'control: before the cut');
  assert.deepEqual(await all(s, `queue=search&createdBefore=${c.after}`), [c.early.id]);
  assert.deepEqual(await all(s, 'queue=search&runner=runner-nobody'), []);
  assert.deepEqual(await all(s, `${combined(c, runner)}&label=team=b`), [], 'one more label: nothing');

  // Bad input: 400.
  for (const q of ['label=novalue', 'createdAfter=yesterday', 'command=', `label=${Array.from({ length: 17 }, (_, i) => `k${i}=v`).join('&label=')}`, 'runner=']) {
    const res = await s.request<{ error: { code: string } }>('GET', `/v1/jobs?${q}`);
    assert.equal(res.status, 400, q);
  }
});

test('search pages are bounded: a filter that matches nothing answers a short page and a cursor', async (t) => {
  const s = await startStack(t, { runner: false });
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  // More jobs than one page looks at (2000): made directly, with the store's own create (fast, no runner needed).
  const jobs = Array.from({ length: 2300 }, () => ({ command: 'true', delayMs: 600_000, queue: 'search' }));
  for (let i = 0; i < jobs.length; i += 1000) {
    const res = await s.request('POST', '/v1/jobs/batch', { jobs: jobs.slice(i, i + 1000) });
    assert.equal(res.status, 201);
  }
  const first = await page(s, 'queue=search&command=no-such-text');
  assert.deepEqual(first.items, []);
  assert.ok(first.nextCursor, 'the scan stopped at its bound and says where to go on');
  const second = await page(s, `queue=search&command=no-such-text&cursor=${first.nextCursor}`);
  assert.deepEqual(second.items, []);
  assert.equal(second.nextCursor, null, 'the rest fits in the second page');
  // A match past the first window is found by following the cursor.
  const found = await all(s, 'queue=search&command=true&limit=1000');
  assert.equal(found.length, 2300);
  await s.request('DELETE', '/v1/queues/search/jobs?status=waiting');
});

test('search through the archive: the same filters, the same answers, after Redis let the jobs go', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '2000', RUNNER_QUEUES: 'search' } });
  const sql = poolThenDrop(t, { url: db, drop });
  const c = await corpus(s);
  const runner = s.config.runner.id;
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  await until('archived', async () => (await sql.query('SELECT 1 FROM drover_jobs')).rowCount === 6);
  await until('gone from Redis', async () => (await keysOf(redis, `{${s.prefix}}:job:*`)).length === 0);
  assert.deepEqual(await all(s, combined(c, runner)), [c.misses.argv.id, c.hit.id]);
  assert.deepEqual(await all(s, 'queue=search&label=team=a&label=env=prod&name=nightly&command=needle-43'), [c.misses.otherCommand.id]);
  assert.deepEqual(await all(s, `queue=search&createdBefore=${c.after}`), [c.early.id]);
  assert.deepEqual(await all(s, `${combined(c, runner)}&label=team=b`), []);
  assert.deepEqual(await all(s, 'queue=search&runner=runner-nobody'), []);
  // A live job and archived ones, merged newest first under one cursor.
  const fresh = await s.run({ queue: 'search', command: 'echo needle-42', labels: { team: 'a', env: 'prod' }, name: 'nightly' });
  const merged = await all(s, 'queue=search&label=team=a&label=env=prod&name=nightly&command=needle-42&limit=1');
  assert.deepEqual(merged, [fresh.id, c.misses.argv.id, c.hit.id, c.early.id]);
});
