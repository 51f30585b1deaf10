import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import type { DeliveryView as Delivery } from '@drover/core';
import { startServiceReady } from './helpers/processes.js';
import { startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  event: { id: string; type: string; jobId: string | null };
  answered: number;
}

/** A webhook receiver on loopback. `answer` picks the status per request (by delivery id and how often it came). */
async function receiver(t: TestContext, answer: (deliveryId: string, seen: number) => number = () => 200) {
  const got: Received[] = [];
  const seen = new Map<string, number>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const id = String(req.headers['drover-delivery']);
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      const status = answer(id, n);
      got.push({ headers: req.headers, body, event: (JSON.parse(body) as { event: Received['event'] }).event, answered: status });
      res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, got };
}


/** The receivers below listen on loopback, which deliveries may reach only when allowed. */
const LOOPBACK = { DROVER_OUTBOUND_ALLOW: '127.0.0.1' };

const sign = (secret: string, ts: string, body: string): string => `v1=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;

test('webhooks: signed POSTs, retried after two 500s, every attempt recorded, a job\'s events in order', async (t) => {
  const s = await startStack(t, { env: { ...LOOPBACK, DROVER_WEBHOOK_RETRY_BASE_MS: '100' } });
  // The first delivery of each job fails twice: its later events must wait for it.
  const failFirst = new Set<string>();
  const r = await receiver(t, (id, n) => {
    if (failFirst.size === 0) failFirst.add(id);
    return failFirst.has(id) && n <= 2 ? 500 : 200;
  });
  const created = await s.request<{ id: string; secret: string }>('POST', '/v1/webhooks', { url: r.url, events: ['job.*'] });
  assert.equal(created.status, 201);
  const { id, secret } = created.body;
  assert.ok(secret.length >= 16);
  const job = await s.run({ command: 'true' });
  const ok = await until('three events delivered', () => {
    const delivered = r.got.filter((g) => g.answered === 200 && g.event.jobId === job.id);
    return delivered.length === 3 ? delivered : undefined;
  });
  assert.deepEqual(ok.map((g) => g.event.type), ['job.submitted', 'job.started', 'job.succeeded'], 'in order, despite the retries of the first');
  for (const g of r.got) {
    assert.equal(g.headers['drover-signature'], sign(secret, String(g.headers['drover-timestamp']), g.body));
    assert.equal(g.headers['drover-event'], g.event.type);
    assert.equal(g.headers['content-type'], 'application/json');
  }
  const firstTries = r.got.filter((g) => g.event.type === 'job.submitted');
  assert.deepEqual(firstTries.map((g) => g.answered), [500, 500, 200]);
  assert.equal(new Set(firstTries.map((g) => g.headers['drover-delivery'])).size, 1, 'a retry is the same delivery');
  assert.equal(new Set(firstTries.map((g) => g.body)).size, 1, 'with the same body');

  // The scheduler records the attempt after the receiver answered: wait for it.
  const submitted = await until('recorded as delivered', async () => {
    const list = (await s.request<{ items: Delivery[] }>('GET', `/v1/webhooks/${id}/deliveries`)).body.items;
    const d = list.find((x) => x.eventType === 'job.submitted');
    return d?.state === 'delivered' ? d : undefined;
  });
  assert.deepEqual(submitted.attempts.map((a) => [a.outcome, a.statusClass]), [['rejected', '5xx'], ['rejected', '5xx'], ['delivered', '2xx']]);
  // The backoff as planned, from the retry times the store records (not when the receiver happened to see the
  // retries): each rejected attempt planned the next one at least base * 2^n later (100, 200 ms), no retry came
  // before its planned time, and the delivered attempt planned none.
  const planned = submitted.attempts.map((a) => (a.retryAt === null ? null : Date.parse(a.retryAt) - Date.parse(a.at)));
  assert.equal(planned[2], null, 'nothing follows the delivered attempt');
  [100, 200].forEach((min, i) => assert.ok(planned[i]! >= min && planned[i]! < min + 5000, `attempt ${i + 1} planned its retry ${planned[i]} ms later (base ${min})`));
  for (let i = 0; i < 2; i++) assert.ok(Date.parse(submitted.attempts[i + 1]!.at) >= Date.parse(submitted.attempts[i]!.retryAt!), `retry ${i + 1} waited until its planned time`);

  // Filters: an event outside the subscription's types is not sent; the secret is never shown again.
  const shown = await s.request<Record<string, unknown>>('GET', `/v1/webhooks/${id}`);
  assert.equal(shown.body.secret, undefined);
  assert.ok(r.got.every((g) => g.event.type.startsWith('job.')));
});

test('a job callbackUrl gets the final event, signed with DROVER_CALLBACK_SECRET; deliveries per job', async (t) => {
  const s = await startStack(t, { env: { ...LOOPBACK, DROVER_CALLBACK_SECRET: 'callback-secret-for-tests', DROVER_WEBHOOK_RETRY_BASE_MS: '100' } });
  const r = await receiver(t);
  const job = await s.run({ command: 'exit 4', callbackUrl: r.url });
  const [got] = await until('callback', () => (r.got.length > 0 ? r.got : undefined));
  assert.equal(got!.event.type, 'job.failed');
  assert.equal(got!.event.jobId, job.id);
  assert.equal(got!.headers['drover-signature'], sign('callback-secret-for-tests', String(got!.headers['drover-timestamp']), got!.body));
  const deliveries = await until('recorded as delivered', async () => {
    const items = (await s.request<{ items: Delivery[] }>('GET', `/v1/jobs/${job.id}/deliveries`)).body.items;
    return items[0]?.state === 'delivered' ? items : undefined;
  });
  assert.equal(deliveries.length, 1);
  assert.equal(deliveries[0]!.webhookId, 'callback');
  assert.equal((await s.request<Record<string, unknown>>('GET', `/v1/jobs/${job.id}`)).body.callbackUrl, undefined, 'never returned');
});

test('webhook deliveries survive a scheduler killed with -9: events during the outage are delivered after restart', async (t) => {
  const env = { ...LOOPBACK, DROVER_WEBHOOK_RETRY_BASE_MS: '100' };
  const s = await startStack(t, { scheduler: false, env });
  const r = await receiver(t);
  await s.request('POST', '/v1/webhooks', { url: r.url, events: ['job.succeeded'] });
  const first = await startServiceReady(t, 'scheduler', s.prefix, env);
  const before = await s.run({ command: 'true' });
  await until('first delivery', () => r.got.some((g) => g.event.jobId === before.id));
  first.kill('SIGKILL');
  await once(first, 'exit');
  const during = await Promise.all([1, 2, 3].map(() => s.run({ command: 'true' })));
  await startServiceReady(t, 'scheduler', s.prefix, env);
  await until('deliveries after restart', () => during.every((j) => r.got.some((g) => g.event.jobId === j.id)));
  const ids = r.got.filter((g) => g.answered === 200).map((g) => g.event.id);
  assert.equal(new Set(ids).size, ids.length, 'each event delivered once');
});

test('webhooks: bad input is a 400 and stores nothing; admin only; unknown ids 404', async (t) => {
  // x.example never resolves: listed, it is taken as it is.
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_OUTBOUND_ALLOW: 'x.example' } });
  for (const body of [{ url: 'ftp://x.example/h' }, { url: 'not a url' }, { url: 'http://x.example', events: ['bogus'] }, { url: 'http://x.example', secret: 'short' }, { url: 'http://x.example', extra: 1 }]) {
    assert.equal((await s.request('POST', '/v1/webhooks', body)).status, 400, JSON.stringify(body));
  }
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/webhooks')).body.items, []);
  assert.equal((await s.request('POST', '/v1/webhooks', { url: 'http://x.example' }, s.tokens.submit)).status, 403);
  assert.equal((await s.request('GET', '/v1/webhooks/01J0000000000000000000000Z')).status, 404);
  assert.equal((await s.request('DELETE', '/v1/webhooks/01J0000000000000000000000Z')).status, 404);
  assert.equal((await s.request('POST', '/v1/jobs', { command: 'true', callbackUrl: 'file:///etc/passwd' })).status, 400);
  const made = await s.request<{ id: string }>('POST', '/v1/webhooks', { url: 'http://x.example/h', queues: ['default'] });
  const patched = await s.request<{ enabled: boolean; events: string[] }>('PATCH', `/v1/webhooks/${made.body.id}`, { enabled: false, events: ['job.failed'] });
  assert.deepEqual([patched.body.enabled, patched.body.events], [false, ['job.failed']]);
  assert.equal((await s.request('DELETE', `/v1/webhooks/${made.body.id}`)).status, 204);
});
