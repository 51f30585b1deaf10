import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Keys, createRedis, loadConfig, nonPublicRange, systemResolver, OutboundPolicy, type DeliveryView, type Resolver } from '@drover/core';
import { freePort, spawnDrover } from './helpers/processes.js';
import { REDIS_URL, TEST_CALLBACK_SECRET, deletePrefix, startStack, testPrefix, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP receiver on loopback that records every request and answers `status`. */
async function receiver(t: TestContext, status = 200): Promise<{ port: number; got: Received[] }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as { port: number }).port, got };
}

/**
 * A verifier written from the Standard Webhooks specification, not with Drover's code: the key is the base64 after
 * `whsec_`; the signed content is `<webhook-id>.<webhook-timestamp>.<body>`; `webhook-signature` is a space-separated
 * list of `v1,<base64 HMAC-SHA256>`; a timestamp more than 5 minutes away is a replay.
 */
function verifyStandardWebhook(secret: string, headers: IncomingHttpHeaders, body: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sigs !== 'string') return false;
  if (!/^\d+$/.test(ts) || Math.abs(nowSeconds - Number(ts)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
  return sigs.split(' ').some((s) => {
    const [version, b64] = s.split(',');
    const got = Buffer.from(b64 ?? '', 'base64');
    return version === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
  });
}

type ErrorBody = { error: { code: string; message: string; details?: { field: string }[] } };

/** A 400 VALIDATION naming `field`. */
function assertRefused(res: { status: number; body: unknown }, field: string, what: string): void {
  const body = res.body as ErrorBody;
  assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(body.error.code, 'VALIDATION', what);
  assert.ok(body.error.details?.some((d) => d.field === field) || body.error.message.includes(field), `${what}: names ${field}: ${JSON.stringify(body)}`);
}

const redisPort = new URL(REDIS_URL).port || '6379';

/** Targets on loopback, link-local, private and special ranges, in the spellings URL parsers turn into them. */
function refusedTargets(s: Stack): string[] {
  const api = new URL(s.url).port;
  return [
    `http://127.0.0.1:${api}/v1/jobs`, `http://127.0.0.1:${redisPort}/`, `http://[::1]:${api}/`, `http://[::ffff:127.0.0.1]:${redisPort}/`,
    'http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://10.0.0.1/', 'http://0.0.0.0/', `http://0:${api}/`,
    'http://2130706433/', 'http://0x7f000001/', 'http://017700000001/', 'http://127.1/', `http://localhost:${api}/`, 'http://LOCALHOST./',
    'http://[64:ff9b::7f00:1]/', 'http://[fe80::1]/', 'http://[fd00::1]/', 'http://100.64.0.1/', 'http://172.16.0.1/', 'http://192.168.1.1/',
    'http://224.0.0.1/', 'http://255.255.255.255/', 'http://198.51.100.7/', 'http://internal.test/', 'https://user:pw@93.184.216.34/',
  ];
}

/** The test's DNS: `internal.test` is private, `public.test` public; everything else is the system's answer. */
const fakeDns: Resolver = async (host) => {
  if (host === 'internal.test') return [{ address: '10.1.2.3', family: 4 }];
  if (host === 'public.test') return [{ address: '93.184.216.34', family: 4 }];
  return systemResolver(host);
};

test('outbound addresses: only public unicast passes, in every spelling; DROVER_OUTBOUND_ALLOW lets listed hosts and ranges through', () => {
  for (const ip of ['127.0.0.1', '127.255.0.9', '::1', '::', '0.0.0.0', '0.1.2.3', '10.9.9.9', '172.31.0.1', '192.168.0.1', '169.254.169.254', 'fe80::1',
    'fd12::1', 'fc00::1', '100.64.0.1', '100.127.255.255', '224.0.0.251', 'ff02::1', '255.255.255.255', '240.0.0.1', '192.0.2.1', '198.51.100.1',
    '203.0.113.1', '2001:db8::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b:1::1',
    '2002:7f00:1::1', '2001::1', '198.18.0.1', '192.0.0.8', '3fff::1', '100::1']) {
    assert.notEqual(nonPublicRange(ip), null, ip);
  }
  for (const ip of ['93.184.216.34', '1.1.1.1', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) {
    assert.equal(nonPublicRange(ip), null, ip);
  }
  const policy = new OutboundPolicy(['127.0.0.1', '10.20.0.0/16', 'hooks.corp', '*.svc.local']);
  assert.equal(policy.refusal('127.0.0.1'), null);
  assert.equal(policy.refusal('::ffff:127.0.0.1'), null, 'the mapped form of a listed address is that address');
  assert.notEqual(policy.refusal('127.0.0.2'), null);
  assert.equal(policy.refusal('10.20.3.4'), null);
  assert.notEqual(policy.refusal('10.21.0.1'), null);
  assert.ok(policy.listed('HOOKS.corp.') && policy.listed('a.b.svc.local') && !policy.listed('svc.local.evil.example') && !policy.listed('corp'));
  assert.throws(() => loadConfig({ DROVER_OUTBOUND_ALLOW: 'hooks.corp,10.0.0.0/33,http://x.example,hooks.corp:8443,1.2.3.4/8/1' }), (err: Error) =>
    ['10.0.0.0/33', 'http://x.example', 'hooks.corp:8443', '1.2.3.4/8/1'].every((bad) => err.message.includes(`"${bad}"`)) && !err.message.includes('"hooks.corp"'));
});

test('callbackUrl and webhook URLs aimed at loopback, link-local, private or special addresses are a 400 naming the field, and nothing is stored', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, resolver: fakeDns });
  const submit = s.tokens.submit;
  const targets = refusedTargets(s);
  for (const url of targets) {
    assertRefused(await s.request('POST', '/v1/jobs', { command: 'true', callbackUrl: url }, submit), 'body/callbackUrl', url);
  }
  // Every way a job template gets in is checked the same way (one check, driven by the schemas).
  const bad = 'http://169.254.169.254/latest/meta-data/';
  const ok = 'http://public.test/hook';
  assertRefused(await s.request('POST', '/v1/jobs/batch', { jobs: [{ command: 'true', callbackUrl: ok }, { command: 'true', callbackUrl: bad }] }, submit), 'body/jobs/1/callbackUrl', 'batch');
  assertRefused(await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: 'true', callbackUrl: bad } }, submit), 'body/job/callbackUrl', 'schedule');
  assertRefused(await s.request('POST', '/v1/schedules', {
    name: 'flow', cron: '0 3 * * *', workflow: { steps: [{ name: 'a', job: { command: 'true' } }, { name: 'b', job: { command: 'true', callbackUrl: bad } }] },
  }, submit), 'body/workflow/steps/1/job/callbackUrl', 'schedule workflow');
  assertRefused(await s.request('POST', '/v1/workflows', { name: 'w', steps: [{ name: 'a', job: { command: 'true', callbackUrl: bad } }] }, submit), 'body/steps/0/job/callbackUrl', 'workflow');
  for (const url of targets) assertRefused(await s.request('POST', '/v1/webhooks', { url }), 'body/url', `webhook ${url}`);
  assert.equal((await s.request('POST', '/v1/jobs', { command: 'true', callbackUrl: 'gopher://public.test/' }, submit)).status, 400, 'only http(s)');

  // An existing schedule and webhook cannot be pointed there later either, and stay as they were.
  assert.equal((await s.request('POST', '/v1/schedules', { name: 'kept', cron: '0 3 * * *', job: { command: 'true', callbackUrl: ok } }, submit)).status, 201);
  assertRefused(await s.request('PUT', '/v1/schedules/kept', { job: { command: 'true', callbackUrl: bad } }, submit), 'body/job/callbackUrl', 'schedule update');
  const hook = await s.request<{ id: string }>('POST', '/v1/webhooks', { url: ok });
  assert.equal(hook.status, 201);
  assertRefused(await s.request('PATCH', `/v1/webhooks/${hook.body.id}`, { url: bad }), 'body/url', 'webhook update');
  assert.equal((await s.request<{ url: string }>('GET', `/v1/webhooks/${hook.body.id}`)).body.url, ok);

  // Nothing of the refused requests was stored.
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
  assert.deepEqual((await s.request<{ items: { name: string }[] }>('GET', '/v1/schedules')).body.items.map((x) => x.name), ['kept']);
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/workflows')).body.items, []);
  assert.deepEqual((await s.request<{ items: { id: string }[] }>('GET', '/v1/webhooks')).body.items.map((h) => h.id), [hook.body.id]);
});

test('DNS rebinding: a name that was public at submit and is loopback at delivery is refused at connect; the receiver gets nothing and the view says refused_by_policy only', async (t) => {
  const r = await receiver(t);
  // The first answer (the API's, at submit) is public; every later one (the scheduler's, at connect) is loopback.
  let asked = 0;
  const resolver: Resolver = async (host) => (host === 'rebind.test' ? [{ address: asked++ === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 }] : systemResolver(host));
  const s = await startStack(t, { resolver });
  const job = await s.run({ command: 'true', callbackUrl: `http://rebind.test:${r.port}/hook` });
  const [delivery] = await until('the delivery given up', async () => {
    const items = (await s.request<{ items: DeliveryView[] }>('GET', `/v1/jobs/${job.id}/deliveries`, undefined, s.tokens.read)).body.items;
    return items[0]?.state === 'failed' ? items : undefined;
  });
  assert.ok(asked >= 2, 'the scheduler resolved the name itself, right before connecting');
  assert.deepEqual(r.got, [], 'nothing reached the loopback receiver');
  assert.deepEqual(delivery!.attempts.map((a) => [a.outcome, a.statusClass]), [['refused_by_policy', null]], 'refused once, not retried');
  assert.deepEqual(Object.keys(delivery!.attempts[0]!).sort(), ['at', 'outcome', 'retryAt', 'statusClass']);
  const shown = JSON.stringify(delivery);
  for (const leak of ['rebind.test', '127.0.0.1', String(r.port), 'url', 'error', 'ECONN']) assert.ok(!shown.includes(leak), `the view shows no ${leak}: ${shown}`);
});

test('a stored callbackUrl with a literal loopback address (written to Redis directly) is refused at connect too', async (t) => {
  const r = await receiver(t);
  const s = await startStack(t);
  const blocker = await s.submit({ command: 'true', delayMs: 600_000 });
  const job = await s.submit({ command: 'true', dependsOn: [blocker.id] });
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  // What someone with write access to Redis (or a record older than the submit check) could leave behind.
  await redis.hset(new Keys(s.prefix).job(job.id), 'callbackUrl', `http://[::ffff:127.0.0.1]:${r.port}/hook`);
  assert.equal((await s.request('POST', `/v1/jobs/${blocker.id}/cancel`)).status, 200);
  const [delivery] = await until('the delivery given up', async () => {
    const items = (await s.request<{ items: DeliveryView[] }>('GET', `/v1/jobs/${job.id}/deliveries`)).body.items;
    return items[0]?.state === 'failed' ? items : undefined;
  });
  assert.equal(delivery!.eventType, 'job.cancelled');
  assert.deepEqual(delivery!.attempts.map((a) => a.outcome), ['refused_by_policy']);
  assert.deepEqual(r.got, []);
});

test('with DROVER_OUTBOUND_ALLOW=127.0.0.1 a receiver gets a Standard Webhooks request a spec-written verifier accepts; other outcomes show as classes only', async (t) => {
  const ok = await receiver(t);
  const failing = await receiver(t, 500);
  const closed = await freePort();
  // hooks.test is a name (resolved by the test's DNS) whose address is allowed: the agent resolves through the policy.
  const resolver: Resolver = async (host) => (host === 'hooks.test' ? [{ address: '127.0.0.1', family: 4 }] : systemResolver(host));
  const s = await startStack(t, { resolver, env: { DROVER_OUTBOUND_ALLOW: '127.0.0.1', DROVER_WEBHOOK_RETRY_BASE_MS: '60000' } });
  const hook = await s.request<{ id: string; secret: string }>('POST', '/v1/webhooks', { url: `http://127.0.0.1:${ok.port}/all`, events: ['job.succeeded'] });
  assert.equal(hook.status, 201);
  assert.match(hook.body.secret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'a generated secret is a Standard Webhooks one');

  const job = await s.run({ command: 'true', callbackUrl: `http://127.0.0.1:${ok.port}/cb` });
  const named = await s.run({ command: 'true', callbackUrl: `http://hooks.test:${ok.port}/named` });
  const rejected = await s.run({ command: 'true', callbackUrl: `http://127.0.0.1:${failing.port}/cb` });
  const unreachable = await s.run({ command: 'true', callbackUrl: `http://127.0.0.1:${closed}/cb` });
  const sentTo = (path: string, jobId: string) => () => ok.got.find((g) => g.path === path && g.body.includes(jobId));
  const callback = await until('the callback', sentTo('/cb', job.id));
  assert.ok(verifyStandardWebhook(TEST_CALLBACK_SECRET, callback.headers, callback.body), 'the callback verifies with the callback secret');
  assert.ok(!verifyStandardWebhook(TEST_CALLBACK_SECRET, callback.headers, callback.body.replace('job.succeeded', 'job.failed')), 'a changed body does not');
  assert.ok(!verifyStandardWebhook(TEST_CALLBACK_SECRET, callback.headers, callback.body, Math.floor(Date.now() / 1000) + 301), 'nor does a replay after 5 minutes');
  const subscription = await until('the webhook delivery', sentTo('/all', job.id));
  assert.ok(verifyStandardWebhook(hook.body.secret, subscription.headers, subscription.body), 'the webhook verifies with its own secret');
  assert.ok(!verifyStandardWebhook(TEST_CALLBACK_SECRET, subscription.headers, subscription.body));
  await until('the callback through a host name', sentTo('/named', named.id));

  const views = async (id: string) => (await s.request<{ items: DeliveryView[] }>('GET', `/v1/jobs/${id}/deliveries`)).body.items;
  const delivered = await until('delivered', async () => ((await views(job.id))[0]?.state === 'delivered' ? views(job.id) : undefined));
  assert.equal(callback.headers['webhook-id'], delivered[0]!.id, 'webhook-id is the delivery id (the same on every retry)');
  assert.deepEqual(delivered[0]!.attempts.map((a) => [a.outcome, a.statusClass]), [['delivered', '2xx']]);
  const no = await until('rejected', async () => ((await views(rejected.id))[0]?.attempts.length ? views(rejected.id) : undefined));
  assert.deepEqual(no[0]!.attempts.map((a) => [a.outcome, a.statusClass]), [['rejected', '5xx']]);
  assert.equal(no[0]!.state, 'pending', 'a rejection is retried');
  const gone = await until('unreachable', async () => ((await views(unreachable.id))[0]?.attempts.length ? views(unreachable.id) : undefined));
  assert.deepEqual(gone[0]!.attempts.map((a) => [a.outcome, a.statusClass]), [['unreachable', null]]);
  for (const v of [delivered, no, gone]) {
    const shown = JSON.stringify(v);
    for (const leak of ['127.0.0.1', 'url', 'ECONNREFUSED', 'error', 'durationMs']) assert.ok(!shown.includes(leak), `no ${leak} in ${shown}`);
  }
  const hookView = JSON.stringify((await s.request('GET', `/v1/webhooks/${hook.body.id}/deliveries`)).body);
  assert.ok(!hookView.includes('"url"') && hookView.includes('"delivered"'), hookView);

  // callbackUrl is never returned: not in a job, a list, events, schedules (job or workflow steps), workflows.
  const cb = `http://127.0.0.1:${ok.port}/cb`;
  const answers: [string, unknown][] = [];
  const keep = async (what: string, p: Promise<{ status: number; body: unknown }>): Promise<void> => {
    const res = await p;
    assert.ok(res.status < 300, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
    answers.push([what, res.body]);
  };
  await keep('job', s.request('GET', `/v1/jobs/${job.id}`, undefined, s.tokens.read));
  await keep('list', s.request('GET', '/v1/jobs?limit=100', undefined, s.tokens.read));
  await keep('events', s.request('GET', `/v1/events?job=${job.id}&limit=100`, undefined, s.tokens.read));
  await keep('schedule created', s.request('POST', '/v1/schedules', { name: 'cb', cron: '0 3 * * *', job: { command: 'true', callbackUrl: cb } }, s.tokens.submit));
  await keep('workflow schedule created', s.request('POST', '/v1/schedules', {
    name: 'cbflow', cron: '0 3 * * *', workflow: { steps: [{ name: 'a', job: { command: 'true', callbackUrl: cb } }] },
  }, s.tokens.submit));
  await keep('schedule', s.request('GET', '/v1/schedules/cb', undefined, s.tokens.read));
  await keep('schedules', s.request('GET', '/v1/schedules', undefined, s.tokens.read));
  const wf = await s.request<{ id: string }>('POST', '/v1/workflows', { name: 'wf', steps: [{ name: 'a', job: { command: 'true', callbackUrl: cb } }] }, s.tokens.submit);
  answers.push(['workflow created', wf.body]);
  await keep('workflow', s.request('GET', `/v1/workflows/${wf.body.id}`, undefined, s.tokens.read));
  await keep('workflows', s.request('GET', '/v1/workflows', undefined, s.tokens.read));
  for (const [what, body] of answers) assert.ok(!JSON.stringify(body).includes(`${ok.port}/cb`), `${what} does not show the callbackUrl: ${JSON.stringify(body)}`);
});

test('the scheduler does not start without a callback secret, nor with a malformed one', async (t) => {
  for (const secret of ['', 'whsec_not*base64*at-all', 'too-short']) {
    const child = spawnDrover(t, ['scheduler'], { PATH: process.env.PATH, REDIS_URL, DROVER_PREFIX: testPrefix(), DROVER_METRICS_PORT: 'off', DROVER_CALLBACK_SECRET: secret }, ['ignore', 'ignore', 'pipe']);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 2, `secret "${secret}": ${stderr}`);
    assert.match(stderr, /DROVER_CALLBACK_SECRET/);
  }
});

test('drover start without a callback secret generates one beside the admin token (0600, Standard Webhooks form), signs callbacks with it, and reuses it', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'drover-secret-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const prefix = testPrefix();
  t.after(() => deletePrefix(prefix));
  const r = await receiver(t);

  const start = async (): Promise<{ url: string; stderr: () => string; stop: () => Promise<void> }> => {
    const port = await freePort();
    const child = spawnDrover(t, ['start'], {
      PATH: process.env.PATH, REDIS_URL, DROVER_PREFIX: prefix, DROVER_PORT: String(port), DROVER_DATA_DIR: dataDir, DROVER_LOG_LEVEL: 'warn',
      DROVER_METRICS_PORT: '0', DROVER_OUTBOUND_ALLOW: '127.0.0.1',
    }, ['ignore', 'ignore', 'pipe']);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await until(`drover start listening (${stderr})`, () => stderr.includes('listening on') || child.exitCode !== null, 60_000);
    assert.equal(child.exitCode, null, stderr);
    return {
      url: `http://127.0.0.1:${port}`,
      stderr: () => stderr,
      stop: async () => {
        child.kill('SIGTERM');
        await once(child, 'exit');
      },
    };
  };

  const first = await start();
  const path = join(dataDir, 'callback-secret');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const secret = readFileSync(path, 'utf8').trim();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.ok(!first.stderr().includes(secret), 'the secret is not printed');
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const res = await fetch(`${first.url}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({ command: 'true', callbackUrl: `http://127.0.0.1:${r.port}/cb` }) });
  assert.equal(res.status, 201, await res.clone().text());
  const got = await until('the callback', () => r.got[0]);
  assert.ok(verifyStandardWebhook(secret, got.headers, got.body), 'signed with the generated secret');
  await first.stop();

  const second = await start();
  assert.equal(readFileSync(path, 'utf8').trim(), secret, 'the same secret on the next start');
  assert.match(second.stderr(), /signing job callbacks with the key in/);
  await second.stop();
});
