import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import {
  createLogger, lua, encodePlacement, loadConfig, normalizeConstraints, runnerAddresses, runnerPlacement, satisfies,
  type JobConstraints, type JobRecord, type RunnerView,
} from '@drover/core';
import { Runner } from '@drover/runner';
import { REDIS_URL, brokerTest, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Warning {
  code: string;
  message: string;
  queue: string;
  constraints?: JobConstraints;
}
type Submitted = JobRecord & { warnings?: Warning[] };
interface ErrorBody {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

/** Runner B's made-up host: two runners of one process must look like two machines to placement. */
const HOST_B = { name: 'Host-B.example', addresses: ['192.0.2.77', '2001:db8::b'] };

/** A second runner in this process on the stack's prefix, with labels and (optionally) a host of its own. */
async function extraRunner(t: TestContext, s: Stack, id: string, labels: Record<string, string>, host?: typeof HOST_B): Promise<Runner> {
  const runner = new Runner({
    config: { ...s.config, runner: { ...s.config.runner, id: `${id}-${s.prefix.slice(5, 13)}`, labels } },
    logger: createLogger('silent', 'test'),
    ...(host ? { host } : {}),
  });
  t.after(() => runner.close());
  await runner.start();
  return runner;
}

const job = (s: Stack, id: string): Promise<JobRecord> => s.request<JobRecord>('GET', `/v1/jobs/${id}`).then((r) => r.body);

test('RUNNER_LABELS: key=value entries; bad ones are configuration errors; host and address come from the machine', () => {
  assert.deepEqual(loadConfig({ RUNNER_LABELS: ' zone=a , gpu=1,rack=r1/2' }).runner.labels, { zone: 'a', gpu: '1', rack: 'r1/2' });
  assert.deepEqual(loadConfig({}).runner.labels, {}, 'none unless told');
  const bad: [string, RegExp][] = [
    ['zone', /RUNNER_LABELS "zone" is not key=value/],
    ['zone=', /RUNNER_LABELS "zone=" is not key=value/],
    ['host=web1', /RUNNER_LABELS "host=web1": host is set by the runner itself/],
    ['address=10.0.0.1', /RUNNER_LABELS "address=10.0.0.1": address is set by the runner itself/],
    ['zone=a,zone=b', /RUNNER_LABELS "zone=b": zone is given twice/],
    ['-x=1', /RUNNER_LABELS "-x=1": the key "-x" may hold/],
    ['zone=a b', /RUNNER_LABELS "zone=a b": the value may hold/],
  ];
  for (const [value, message] of bad) assert.throws(() => loadConfig({ RUNNER_LABELS: value }), message, value);
  // Every problem at once, with the others of the configuration.
  assert.throws(() => loadConfig({ RUNNER_LABELS: 'x,host=a', RUNNER_CONCURRENCY: 'many' }), (err: Error) =>
    /"x" is not key=value/.test(err.message) && /host is set by the runner/.test(err.message) && /RUNNER_CONCURRENCY/.test(err.message));

  const iface = (address: string, family: 'IPv4' | 'IPv6', internal: boolean) =>
    ({ address, family, internal, netmask: '', mac: '', cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as never;
  assert.deepEqual(runnerAddresses({ lo: [iface('127.0.0.1', 'IPv4', true)], eth0: [iface('FD00:0:0::2', 'IPv6', false), iface('10.1.2.3', 'IPv4', false)] }), ['10.1.2.3', 'fd00::2'],
    'non-internal only, IPv4 first, IPv6 canonical');
  assert.deepEqual(runnerAddresses({ lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)] }), ['127.0.0.1', '::1'], 'loopback when there is nothing else');
  const me = runnerPlacement('r1', { zone: 'a' }, 'Web-1', ['10.1.2.3', 'fd00::2']);
  assert.deepEqual(me.labels, { zone: 'a', host: 'web-1', address: '10.1.2.3' });
});

test('satisfies and the claim script agree: host by name (any case), address or id; every label; address matches any', async (t) => {
  const me = runnerPlacement('runner-7', { zone: 'a', gpu: '1' }, 'Web-1.Corp', ['10.1.2.3', 'fd00::2']);
  const cases: [JobConstraints, boolean][] = [
    [{ host: ['web-1.corp'] }, true],
    [{ host: ['other', 'WEB-1.CORP'] }, true],
    [{ host: ['10.1.2.3'] }, true],
    [{ host: ['FD00:0::2'] }, true],
    [{ host: ['runner-7'] }, true],
    [{ host: ['RUNNER-7'] }, false],
    [{ host: ['web-2', '10.1.2.4'] }, false],
    [{ labels: { zone: 'a' } }, true],
    [{ labels: { zone: 'a', gpu: '1' } }, true],
    [{ labels: { zone: 'a', gpu: '2' } }, false],
    [{ labels: { rack: 'x' } }, false],
    [{ labels: { address: 'fd00::2' } }, true],
    [{ labels: { host: 'WEB-1.corp' } }, true],
    [{ host: ['web-1.corp'], labels: { zone: 'b' } }, false],
    [{ notHost: ['web-2'] }, true],
    [{ notHost: ['web-2', 'WEB-1.corp'] }, false],
    [{ notHost: ['fd00:0::2'] }, false],
    [{ notHost: ['runner-7'] }, false],
    [{ host: ['web-1.corp'], notHost: ['10.1.2.3'] }, false],
    [{ labels: { zone: 'a' }, notHost: ['10.9.9.9'] }, true],
  ];
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.disconnect());
  const runner = encodePlacement(me);
  for (const [given, expected] of cases) {
    const c = normalizeConstraints(given)!;
    assert.equal(satisfies(c, me), expected, `satisfies ${JSON.stringify(given)}`);
    // The claim script's rule itself, on no key at all.
    const inLua = await redis.eval(`${lua('lib/placement')}\nreturn placementAllows(ARGV[1], ARGV[2]) and 1 or 0`, 0, JSON.stringify(c), runner);
    assert.equal(inLua, expected ? 1 : 0, `placementAllows ${JSON.stringify(given)}`);
  }
  assert.equal(await redis.eval(`${lua('lib/placement')}\nreturn placementAllows(ARGV[1], ARGV[2]) and 1 or 0`, 0, '{"labels":{"zone":"a"}}', ''), 0,
    'a claim that says nothing of its runner satisfies no constraint');
});

brokerTest('a job constrained to runner B (label, host name, address or id) runs on B only; unconstrained ones run on A too', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_LABELS: 'zone=a', RUNNER_CONCURRENCY: '4' } });
  const a = s.runner!;
  const b = await extraRunner(t, s, 'b', { zone: 'b', gpu: '1' }, HOST_B);

  const runners = (await s.request<{ items: RunnerView[] }>('GET', '/v1/runners')).body.items;
  const viewB = runners.find((r) => r.id === b.id)!;
  assert.deepEqual(viewB.labels, { zone: 'b', gpu: '1', host: 'host-b.example', address: '192.0.2.77' });
  assert.deepEqual(viewB.addresses, ['192.0.2.77', '2001:db8::b']);
  assert.equal(viewB.host, 'Host-B.example');
  const viewA = runners.find((r) => r.id === a.id)!;
  assert.equal(viewA.labels.zone, 'a');
  assert.equal(viewA.labels.host, hostname().toLowerCase());
  assert.ok(viewA.addresses.length > 0, 'a runner registers its addresses');

  const toB: JobConstraints[] = [{ labels: { zone: 'b' } }, { labels: { gpu: '1', zone: 'b' } }, { host: ['host-b.EXAMPLE'] }, { host: ['192.0.2.77'] }, { host: ['2001:DB8:0::B'] }, { host: [b.id] }];
  const submitted = await Promise.all([
    ...Array.from({ length: 18 }, (_, i) => s.submit({ command: 'true', constraints: toB[i % toB.length] }).then((j) => ({ j, want: b.id }))),
    ...Array.from({ length: 6 }, () => s.submit({ command: 'true', constraints: { labels: { zone: 'a' } } }).then((j) => ({ j, want: a.id }))),
    ...Array.from({ length: 16 }, () => s.submit({ command: 'true' }).then((j) => ({ j, want: null }))),
  ]);
  const done = await Promise.all(submitted.map(async ({ j, want }) => ({ r: await s.waitFor(j.id), want })));
  for (const { r, want } of done) {
    assert.equal(r.status, 'succeeded', JSON.stringify(r));
    if (want) assert.equal(r.runnerId, want, `${JSON.stringify(r.constraints)} ran on ${r.runnerId}`);
    assert.equal(r.placement, null, 'not waiting any more');
  }
  assert.deepEqual(done[2]!.r.constraints, { host: ['host-b.EXAMPLE'] }, 'the record keeps the constraints (host names as given)');
  assert.deepEqual(done[4]!.r.constraints, { host: ['2001:db8::b'] }, 'addresses in canonical form');
  // The control: unconstrained jobs are not all B's, so the constrained ones did not land on B by chance.
  const free = new Set(done.filter((d) => d.want === null).map((d) => d.r.runnerId));
  assert.ok(free.has(a.id), `unconstrained jobs ran on ${[...free].join(', ')}`);
});

brokerTest('a job no live runner satisfies warns, waits without spinning, and runs once a runner that satisfies it starts', async (t, broker) => {
  // Scans every 100 ms: over the wait below runner A looks at the store's groups some ten times.
  const s = await startStack(t, { broker, env: { RUNNER_LABELS: 'zone=a', RUNNER_QUEUE_SCAN_MS: '100' } });
  const a = s.runner!;

  const fits = await s.request<Submitted>('POST', '/v1/jobs', { command: 'true', constraints: { labels: { zone: 'a' } } });
  assert.equal(fits.status, 201);
  assert.equal(fits.body.warnings, undefined, 'a runner satisfies it: no warnings');

  const res = await s.request<Submitted>('POST', '/v1/jobs', { command: 'echo placed', constraints: { labels: { zone: 'c' }, host: ['nowhere.example', hostname()] } });
  assert.equal(res.status, 201);
  assert.deepEqual(res.body.warnings?.map((w) => [w.code, w.queue]), [['NO_MATCHING_RUNNER', 'default']]);
  assert.match(res.body.warnings[0]!.message, /no live runner of queue default satisfies the constraints host one of nowhere\.example, .*; labels zone=c/);
  assert.deepEqual(res.body.warnings[0]!.constraints, { host: ['nowhere.example', hostname()], labels: { zone: 'c' } });
  const cancelMe = await s.submit({ command: 'echo never', constraints: { labels: { zone: 'c' } } });

  const declined = await until('runner A declined the job', async () => {
    const j = await job(s, res.body.id);
    return j.placement ? j : undefined;
  });
  assert.equal(declined.status, 'queued');
  assert.equal(declined.placement!.declinedBy, a.id);
  assert.ok(declined.placement!.declines >= 1, 'the count counts');
  assert.match(declined.placement!.reason, new RegExp(`runner ${a.id} does not satisfy its constraints`));

  // Many scheduler ticks (20 ms) and scans (100 ms) later: nobody handed it around meanwhile.
  await new Promise((r) => setTimeout(r, 1500));
  const still = await job(s, res.body.id);
  assert.equal(still.status, 'queued');
  assert.equal(still.attempts, 0);
  assert.ok(still.placement!.declines <= 2, `declined ${still.placement!.declines} times while it waited`);
  assert.equal(still.placement!.waitingSince, declined.placement!.waitingSince);

  const cancelled = await s.request<JobRecord>('POST', `/v1/jobs/${cancelMe.id}/cancel`);
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal((await job(s, cancelMe.id)).status, 'cancelled');

  const c = await extraRunner(t, s, 'c', { zone: 'c' });
  const ran = await s.waitFor(res.body.id);
  assert.equal(ran.status, 'succeeded');
  assert.equal(ran.runnerId, c.id);
  assert.equal(ran.placement, null);
  assert.equal(ran.attempts, 1);
  const gone = await job(s, cancelMe.id);
  assert.deepEqual([gone.status, gone.attempts], ['cancelled', 0], 'a cancelled job left its group');
  await until('submissions no longer warn', async () =>
    (await s.request<Submitted>('POST', '/v1/jobs', { command: 'true', constraints: { labels: { zone: 'c' } } })).body.warnings === undefined);
});

test('a constrained schedule trigger and a workflow step are placed; unsatisfiable ones warn', async (t) => {
  const s = await startStack(t, { env: { RUNNER_LABELS: 'zone=a' } });
  const b = await extraRunner(t, s, 'b', { zone: 'b' });
  type Warned = { warnings?: Warning[] };

  const sched = await s.request<Warned & { job: Record<string, unknown> }>('POST', '/v1/schedules', {
    name: 'on-b', cron: '0 3 * * *', job: { command: 'true', constraints: { labels: { zone: 'b' } } },
  });
  assert.equal(sched.status, 201, JSON.stringify(sched.body));
  assert.equal(sched.body.warnings, undefined);
  assert.deepEqual(sched.body.job.constraints, { labels: { zone: 'b' } }, 'the template shows them');
  const fired = await Promise.all(Array.from({ length: 6 }, () => s.request<JobRecord>('POST', '/v1/schedules/on-b/trigger')));
  for (const f of fired) {
    assert.equal(f.status, 201);
    const r = await s.waitFor(f.body.id);
    assert.deepEqual([r.status, r.runnerId, r.schedule], ['succeeded', b.id, 'on-b']);
    assert.deepEqual(r.constraints, { labels: { zone: 'b' } });
  }

  const flow = await s.request<Warned & { id: string; steps: { name: string; jobId: string }[] }>('POST', '/v1/workflows', {
    name: 'placed',
    steps: [
      { name: 'first', job: { command: 'true', constraints: { labels: { zone: 'a' } } } },
      ...Array.from({ length: 4 }, (_, i) => ({ name: `gpu-${i}`, dependsOn: ['first'], job: { command: 'true', constraints: { host: [b.id] } } })),
    ],
  });
  assert.equal(flow.status, 201, JSON.stringify(flow.body));
  assert.equal(flow.body.warnings, undefined);
  for (const st of flow.body.steps) {
    const r = await s.waitFor(st.jobId);
    assert.equal(r.status, 'succeeded');
    assert.equal(r.runnerId, st.name === 'first' ? s.runner!.id : b.id, st.name);
  }

  const lonely = await s.request<Warned>('POST', '/v1/schedules', { name: 'nowhere', cron: '0 3 * * *', job: { command: 'true', constraints: { labels: { zone: 'z' } } } });
  assert.deepEqual(lonely.body.warnings?.map((w) => w.code), ['NO_MATCHING_RUNNER']);
  const lonelyFlow = await s.request<Warned>('POST', '/v1/workflows', { name: 'nowhere', steps: [{ name: 'x', job: { command: 'true', constraints: { host: ['nowhere.example'] } } }] });
  assert.deepEqual(lonelyFlow.body.warnings?.map((w) => [w.code, w.constraints]), [['NO_MATCHING_RUNNER', { host: ['nowhere.example'] }]]);
});

test('bad constraints answer 400 with the error envelope and store nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const bad: [unknown, RegExp][] = [
    [{ host: [] }, /constraints\/host/],
    [{ host: ['web-1:8080'] }, /constraints\/host\/0: "web-1:8080" is neither a host name nor an address/],
    [{ host: ['bad host'] }, /constraints\/host\/0/],
    [{ host: Array.from({ length: 65 }, (_, i) => `h${i}`) }, /constraints\/host/],
    [{ labels: { 'bad key': 'x' } }, /constraints\/labels/],
    [{ labels: { zone: '' } }, /constraints\/labels\/zone/],
    [{ zone: 'a' }, /constraints/],
    ['zone=a', /constraints/],
  ];
  for (const [constraints, message] of bad) {
    const res = await s.request<ErrorBody>('POST', '/v1/jobs', { command: 'true', constraints });
    assert.equal(res.status, 400, JSON.stringify(constraints));
    assert.equal(res.body.error.code, 'VALIDATION');
    assert.match(res.body.error.message, message, JSON.stringify(constraints));
  }
  const batch = await s.request<ErrorBody>('POST', '/v1/jobs/batch', { jobs: [{ command: 'true' }, { command: 'true', constraints: { host: ['a:1'] } }] });
  assert.equal(batch.status, 400);
  assert.match(batch.body.error.message, /jobs\/1\/constraints\/host\/0/);
  const sched = await s.request<ErrorBody>('POST', '/v1/schedules', { name: 'bad', cron: '@daily', job: { command: 'true', constraints: { host: ['a:1'] } } });
  assert.equal(sched.status, 400);
  assert.match(sched.body.error.message, /job\/constraints\/host\/0/);
  const flow = await s.request<ErrorBody>('POST', '/v1/workflows', { name: 'bad', steps: [{ name: 'x', job: { command: 'true', constraints: { labels: { k: '' } } } }] });
  assert.equal(flow.status, 400);
  assert.equal(flow.body.error.code, 'VALIDATION');

  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, [], 'no job was stored');
  assert.equal((await s.request('GET', '/v1/schedules/bad')).status, 404, 'no schedule was stored');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/workflows')).body.items, [], 'no workflow was stored');
  // The control: the same body with good constraints is stored.
  assert.equal((await s.request('POST', '/v1/jobs', { command: 'true', constraints: { host: ['web-1'] } })).status, 201);
});
