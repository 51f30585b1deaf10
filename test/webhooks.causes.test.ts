import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { freePort } from './helpers/processes.js';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Attempt {
  outcome: string;
  status: number | null;
  statusClass: string | null;
  cause: string | null;
}
interface Delivery {
  eventType: string;
  attempts: Attempt[];
}
type ErrorBody = { error: { code: string; message: string } };

async function listen(t: TestContext, server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as { port: number }).port;
}

/** The first attempt's of the webhook's job.submitted delivery, once recorded. */
async function firstAttempt(s: Stack, url: string): Promise<Attempt> {
  const hook = await s.request<{ id: string }>('POST', '/v1/webhooks', { url, events: ['job.submitted'] });
  assert.equal(hook.status, 201, JSON.stringify(hook.body));
  await s.submit({ command: 'true' });
  const attempt = await until(`an attempt to ${url}`, async () => {
    const items = (await s.request<{ items: Delivery[] }>('GET', `/v1/webhooks/${hook.body.id}/deliveries`)).body.items;
    return items[0]?.attempts[0];
  }, 20_000);
  await s.request('DELETE', `/v1/webhooks/${hook.body.id}`);
  return attempt;
}

test('a failed delivery says why: the HTTP status, connection refused, a self-signed certificate; never the address', async (t) => {
  const s = await startStack(t, { env: { DROVER_OUTBOUND_ALLOW: '127.0.0.1', DROVER_WEBHOOK_RETRY_BASE_MS: '60000' } });

  const busy = await listen(t, createServer((_req, res) => res.writeHead(503).end()));
  const rejected = await firstAttempt(s, `http://127.0.0.1:${busy}/hook`);
  assert.deepEqual(rejected, { ...rejected, outcome: 'rejected', status: 503, statusClass: '5xx', cause: 'HTTP 503' });

  const closed = await freePort();
  const refused = await firstAttempt(s, `http://127.0.0.1:${closed}/hook`);
  assert.equal(refused.outcome, 'unreachable');
  assert.equal(refused.cause, 'ECONNREFUSED: connection refused');

  const dir = mkdtempSync(join(tmpdir(), 'drover-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  const tls = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => res.writeHead(200).end());
  const tlsPort = await listen(t, tls);
  const untrusted = await firstAttempt(s, `https://127.0.0.1:${tlsPort}/hook`);
  assert.equal(untrusted.outcome, 'unreachable');
  assert.equal(untrusted.cause, 'self-signed certificate');

  const delivered = await firstAttempt(s, `http://127.0.0.1:${await listen(t, createServer((_req, res) => res.writeHead(204).end()))}/hook`);
  assert.deepEqual([delivered.outcome, delivered.cause, delivered.status], ['delivered', null, 204], 'the control: no cause when it worked');
  for (const a of [rejected, refused, untrusted]) assert.doesNotMatch(a.cause ?? '', /127\.0\.0\.1|\d{4,5}/, 'no address or port in a cause');
});

test('subscriptions and event filters name only event types that exist; the answer lists the allowed ones', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_OUTBOUND_ALLOW: '127.0.0.1' } });
  for (const events of [['job.finished'], ['jobs.*'], ['job.*', 'schedule.fire']]) {
    const r = await s.request<ErrorBody>('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/h', events });
    assert.equal(r.status, 400, JSON.stringify(events));
    assert.match(r.body.error.message, /is no event type: each must be one of job\.submitted, .*job\.\*/);
  }
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/webhooks')).body.items, [], 'nothing was created');
  const ok = await s.request<{ id: string }>('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/h', events: ['job.*', 'schedule.fired', 'runner.gone'] });
  assert.equal(ok.status, 201, 'the control: known types and families');
  const patched = await s.request<ErrorBody>('PATCH', `/v1/webhooks/${ok.body.id}`, { events: ['job.done'] });
  assert.equal(patched.status, 400);
  assert.deepEqual((await s.request<{ events: string[] }>('GET', `/v1/webhooks/${ok.body.id}`)).body.events, ['job.*', 'schedule.fired', 'runner.gone'], 'unchanged');
  const filter = await s.request<ErrorBody>('GET', '/v1/events?types=job.succeded');
  assert.equal(filter.status, 400);
  assert.match(filter.body.error.message, /"job\.succeded" is no event type/);
  assert.equal((await s.request('GET', '/v1/events?types=job.succeeded,runner.*')).status, 200);
});
