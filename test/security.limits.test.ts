import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadTokens, startApiServer } from '@drover/api';
import { createLogger, createRedis, type JobRecord } from '@drover/core';
import { connectSse } from './helpers/sse.js';
import { REDIS_URL, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/**
 * One HTTP request with the Authorization header exactly as given (or none), from a chosen loopback address: the
 * whole 127/8 is local on Linux, so 127.0.0.2 and 127.0.0.3 are other clients to the API.
 */
function call(baseUrl: string, path: string, opts: { authorization?: string; from?: string; method?: string; body?: unknown } = {}): Promise<Answer> {
  const url = new URL(path, baseUrl);
  const headers: Record<string, string> = {};
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: opts.method ?? 'GET', headers, localAddress: opts.from ?? '127.0.0.1', agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text.startsWith('{') ? (JSON.parse(text) as Answer['body']) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A second API replica on the same prefix and Redis: budgets must hold across replicas. */
async function secondReplica(t: TestContext, s: Stack): Promise<string> {
  const api = await startApiServer({ config: s.config, logger: createLogger('silent', 'test'), tokens: s.registry });
  t.after(() => api.close());
  return api.url;
}

test('rate limit: every spelling of the Authorization header spends the one budget of its token, on every replica', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_RATE_LIMIT: '6' } });
  const other = await secondReplica(t, s);
  const tok = s.tokens.read;
  const spellings = [`Bearer ${tok}`, `bearer ${tok}`, `BEARER ${tok}`, `Bearer  ${tok}`, `Bearer\t${tok}`, `bEaReR \t ${tok}  `, `Bearer ${tok}\t`];
  const statuses: number[] = [];
  for (let i = 0; i < 14; i++) {
    // Alternating replicas too: the count lives in Redis.
    const res = await call(i % 2 === 0 ? s.url : other, '/v1/jobs', { authorization: spellings[i % spellings.length]! });
    statuses.push(res.status);
    if (res.status === 429) {
      assert.equal(res.body.error?.code, 'RATE_LIMITED');
      assert.ok(Number(res.headers['retry-after']) > 0, 'says when to come back');
    }
  }
  assert.deepEqual(statuses, [...Array.from({ length: 6 }, () => 200), ...Array.from({ length: 8 }, () => 429)], statuses.join(' '));
  assert.equal((await call(s.url, '/v1/jobs', { authorization: `Bearer ${s.tokens.admin}` })).status, 200, 'another token has its own budget');
  for (let i = 0; i < 10; i++) {
    assert.equal((await call(s.url, '/healthz')).status, 200, 'liveness probes are never limited');
    assert.equal((await call(s.url, '/readyz')).status, 200, 'readiness probes are never limited');
  }
});

test('failed authentication: an address gets 429 after a small burst of wrong tokens, a right token included; other addresses and probes are unaffected', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_AUTH_FAIL_LIMIT: '5' } });
  const other = await secondReplica(t, s);
  const guesser = '127.0.0.2';
  const neighbour = '127.0.0.3';
  // Five failures of every kind: unknown tokens in two spellings, no header, another scheme, an empty bearer.
  const failures = [`Bearer ${'x'.repeat(32)}`, `bearer ${'y'.repeat(32)}`, undefined, 'Basic YWRtaW46YWRtaW4=', 'Bearer '];
  for (const authorization of failures) {
    const res = await call(s.url, '/v1/jobs', { from: guesser, ...(authorization !== undefined ? { authorization } : {}) });
    assert.equal(res.status, 401, `${authorization ?? 'no header'} is refused as unauthenticated`);
  }
  const sixth = await call(s.url, '/v1/jobs', { from: guesser, authorization: `Bearer ${'z'.repeat(32)}` });
  assert.equal(sixth.status, 429);
  assert.equal(sixth.body.error?.code, 'RATE_LIMITED');
  assert.match(sixth.body.error?.message ?? '', /missing or unknown token/);
  assert.ok(Number(sixth.headers['retry-after']) > 0);
  // The right token from the guessing address is refused the same way: a 2xx here would tell which guess was right.
  for (const path of ['/v1/jobs', '/v1/whoami', '/metrics', '/v1/no-such-route']) {
    assert.equal((await call(s.url, path, { from: guesser, authorization: `Bearer ${s.tokens.admin}` })).status, 429, `${path} with the right token`);
  }
  assert.equal((await call(other, '/v1/whoami', { from: guesser, authorization: `Bearer ${s.tokens.admin}` })).status, 429, 'every replica knows the address');
  assert.equal((await call(other, '/v1/jobs', { from: guesser, authorization: 'Bearer nope' })).status, 429);
  // Probes need no token and reveal nothing: they stay open for the load balancer behind that address.
  assert.equal((await call(s.url, '/healthz', { from: guesser })).status, 200);
  assert.equal((await call(s.url, '/readyz', { from: guesser })).status, 200);
  // Another client is not punished for the guesser's attempts.
  assert.equal((await call(s.url, '/v1/whoami', { from: neighbour, authorization: `Bearer ${s.tokens.read}` })).status, 200);
  assert.equal((await call(s.url, '/v1/jobs', { from: neighbour, authorization: 'Bearer nope' })).status, 401);
});

/** Everything a submission leaves in Redis under a prefix: job records, index entries, outbox, events. */
async function storedJobs(t: TestContext, prefix: string): Promise<{ jobKeys: number; indexed: number; outbox: number; events: number }> {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const base = `{${prefix}}`;
  let jobKeys = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${base}:job:*`, 'COUNT', 1000);
    cursor = next;
    jobKeys += keys.length;
  } while (cursor !== '0');
  const [indexed, outbox, events] = await Promise.all([redis.zcard(`${base}:idx:all`), redis.zcard(`${base}:outbox`), redis.xlen(`${base}:events`)]);
  return { jobKeys, indexed, outbox, events };
}

test('amplification: the 5 KB batch of 50 x replicas 64 is a 400 naming the limit, and stores nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const res = await s.request<Answer['body']>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 50 }, () => ({ command: 'true', replicas: 64 })) });
  assert.equal(res.status, 400);
  assert.equal(res.body.error?.code, 'VALIDATION');
  assert.match(res.body.error?.message ?? '', /3200 jobs.*at most 1000 \(DROVER_MAX_JOBS_PER_REQUEST\)/);
  assert.deepEqual(await storedJobs(t, s.prefix), { jobKeys: 0, indexed: 0, outbox: 0, events: 0 });
});

test('amplification: every route that creates jobs counts them (items x replicas, steps x replicas, a schedule fire); at the limit it still works', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_MAX_JOBS_PER_REQUEST: '50' } });
  const over: [string, string, unknown][] = [
    ['POST', '/v1/jobs', { command: 'true', replicas: 51 }],
    ['POST', '/v1/jobs/batch', { jobs: [{ command: 'true', replicas: 30 }, { command: 'true', replicas: 21 }] }],
    ['POST', '/v1/jobs/batch', { jobs: Array.from({ length: 51 }, () => ({ command: 'true' })) }],
    ['POST', '/v1/workflows', { name: 'wide', steps: [{ name: 'a', job: { command: 'true', replicas: 26 } }, { name: 'b', dependsOn: ['a'], job: { command: 'true', replicas: 25 } }] }],
    ['POST', '/v1/schedules', { name: 'wide-job', cron: '* * * * *', job: { command: 'true', replicas: 51 } }],
    ['POST', '/v1/schedules', { name: 'wide-flow', cron: '* * * * *', workflow: { steps: [{ name: 'a', job: { command: 'true', replicas: 40 } }, { name: 'b', job: { command: 'true', replicas: 11 } }] } }],
  ];
  for (const [method, path, body] of over) {
    const res = await s.request<Answer['body']>(method, path, body);
    assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.error?.code, 'VALIDATION');
    assert.match(res.body.error?.message ?? '', /51 jobs.*at most 50 \(DROVER_MAX_JOBS_PER_REQUEST\)/);
  }
  // Meproc's adapter answers in its own envelope, with the same status.
  const proc = await s.request<{ code: number; msg: string }>('POST', '/proc', { name: 'wide', cmd: 'true', type: 'once', replica: 51 });
  assert.equal(proc.status, 400);
  assert.match(proc.body.msg, /DROVER_MAX_JOBS_PER_REQUEST/);
  const cron = await s.request<{ code: number; msg: string }>('POST', '/proc', { name: 'wide-cron', cmd: 'true', type: 'cron', cron: '* * * * *', replica: 51 });
  assert.equal(cron.status, 400);
  assert.deepEqual(await storedJobs(t, s.prefix), { jobKeys: 0, indexed: 0, outbox: 0, events: 0 });
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/schedules')).body.items, [], 'no schedule was created');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/workflows')).body.items, [], 'no workflow was created');

  // A schedule cannot grow past the limit by an update either; it keeps what it had.
  assert.equal((await s.request('POST', '/v1/schedules', { name: 'narrow', cron: '* * * * *', enabled: false, job: { command: 'true', replicas: 2 } })).status, 201);
  assert.equal((await s.request('PUT', '/v1/schedules/narrow', { job: { command: 'true', replicas: 51 } })).status, 400);
  assert.equal((await s.request<{ job: { replicas?: number } }>('GET', '/v1/schedules/narrow')).body.job.replicas, 2);

  // Exactly at the limit is fine.
  const at = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 25 }, () => ({ command: 'true', replicas: 2 })) });
  assert.equal(at.status, 201);
  assert.equal((await storedJobs(t, s.prefix)).jobKeys, 50);
});

/** An SSE request on a raw socket, so the test can hang up the way a crashed client does (TCP reset). */
async function rawStream(t: TestContext, baseUrl: string, path: string, token: string): Promise<{ status: number; reset: () => void }> {
  const url = new URL(baseUrl);
  const socket: Socket = connect(Number(url.port), url.hostname);
  t.after(() => socket.destroy());
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`);
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  return { status, reset: () => socket.resetAndDestroy() };
}

test('SSE: streams per token are capped across replicas; the next answers 429; a stream that ends or a client that vanishes gives its slot back', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_MAX_STREAMS_PER_TOKEN: '3' } });
  const other = await secondReplica(t, s);
  const tok = s.tokens.admin;
  const job = await s.submit({ command: 'true' }); // no runner: it stays queued, so following its log stays open
  const e1 = await rawStream(t, s.url, '/v1/events', tok);
  const e2 = await rawStream(t, other, '/v1/events', tok);
  const follow = await rawStream(t, s.url, `/v1/jobs/${job.id}/logs?follow=1`, tok);
  assert.deepEqual([e1.status, e2.status, follow.status], [200, 200, 200]);

  const refused = async (base: string, path = '/v1/events'): Promise<void> => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${tok}`, accept: 'text/event-stream' } });
    const body = (await res.json()) as Answer['body'];
    assert.equal(res.status, 429);
    assert.equal(body.error?.code, 'RATE_LIMITED');
    assert.match(body.error?.message ?? '', /3 event or log streams open \(DROVER_MAX_STREAMS_PER_TOKEN\)/);
  };
  await refused(s.url);
  await refused(other, `/v1/jobs/${job.id}/logs?follow=1`);
  // Not streams: pages of events and logs are not counted.
  assert.equal((await s.request('GET', '/v1/events')).status, 200);
  assert.equal((await s.request('GET', `/v1/jobs/${job.id}/logs`)).status, 200);
  // Another token has its own slots.
  const mine = await connectSse(`${s.url}/v1/events`, { authorization: `Bearer ${s.tokens.read}` });
  assert.equal(mine.status, 200);
  mine.close();

  const opened: { close: () => void }[] = [];
  t.after(() => opened.forEach((c) => c.close()));
  const openOne = (base: string): Promise<{ close: () => void }> =>
    until('a stream slot to come free', async () => {
      const c = await connectSse(`${base}/v1/events`, { authorization: `Bearer ${tok}` });
      if (c.status === 200) return c;
      c.close();
      return undefined;
    }, 10_000, 25);

  // The followed job ends: its stream closes on the server's side and gives the slot back.
  assert.equal((await s.request('POST', `/v1/jobs/${job.id}/cancel`)).status, 200);
  opened.push(await openOne(s.url));
  await refused(s.url);

  // Two clients vanish without a goodbye (TCP reset): their slots come back, exactly two of them.
  e1.reset();
  e2.reset();
  opened.push(await openOne(other), await openOne(s.url));
  await refused(s.url);
  await refused(other);
});

test('quota: a token with maxUnfinished gets 429 QUOTA past its cap and nothing is stored; ended jobs free room; the tokens file is checked', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const capped = 'capped-token-0123456789abcdef';
  s.registry.add(capped, { name: 'capped', scope: 'submit', maxUnfinished: 3 });
  const as = <T = Answer['body']>(method: string, path: string, body?: unknown) => s.request<T>(method, path, body, capped);
  // No runner: every job stays queued, so every one counts.
  assert.equal((await as('POST', '/v1/jobs/batch', { jobs: [{ command: 'true' }, { command: 'true' }] })).status, 201);
  const over = await as('POST', '/v1/jobs', { command: 'true', replicas: 2 });
  assert.equal(over.status, 429);
  assert.equal(over.body.error?.code, 'QUOTA');
  assert.match(over.body.error?.message ?? '', /2 unfinished jobs and may have at most 3 \(maxUnfinished\)/);
  const third = await as<JobRecord>('POST', '/v1/jobs', { command: 'true' });
  assert.equal(third.status, 201);
  for (const [path, body] of [['/v1/jobs', { command: 'true' }], ['/v1/workflows', { name: 'w', steps: [{ name: 'a', job: { command: 'true' } }] }]] as const) {
    assert.equal((await as('POST', path, body)).status, 429, `${path} counts too`);
  }
  assert.equal((await storedJobs(t, s.prefix)).jobKeys, 3, 'refused submissions stored nothing');
  assert.equal((await s.request('POST', '/v1/jobs', { command: 'true' })).status, 201, 'other tokens are not capped');
  // A job that ended no longer counts.
  assert.equal((await s.request('POST', `/v1/jobs/${third.body.id}/cancel`)).status, 200);
  assert.equal((await as('POST', '/v1/jobs', { command: 'true' })).status, 201);
  assert.equal((await as('POST', '/v1/jobs', { command: 'true' })).status, 429);

  const dir = mkdtempSync(join(tmpdir(), 'drover-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens.json');
  writeFileSync(file, JSON.stringify({ tokens: [{ name: 'x', token: 'a'.repeat(32), scope: 'submit', maxUnfinished: 0 }] }), { mode: 0o600 });
  assert.throws(() => loadTokens({ tokensFile: file }), /tokens\[0\]\.maxUnfinished must be a whole number above 0/);
});
