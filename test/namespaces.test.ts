import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { isTerminal, rabbitNames, type JobRecord } from '@drover/core';
import { freePort, startService, startServiceReady } from './helpers/processes.js';
import { metricValue, parseMetrics } from './helpers/prom.js';
import { REDIS_URL, brokerTest, testPrefix } from './helpers/stack.js';
import { until } from './helpers/until.js';

/*
 * Namespaces through the real services, each its own process as in production: one API, one scheduler (serving every
 * namespace, those created after it started too), and runners serving RUNNER_NAMESPACE lists and `*`. Tokens of
 * one namespace, of two, of every one; the ways a request names its namespace; and what a token must not learn.
 */

const hex = (n: number): string => randomBytes(n).toString('hex');
type Who = 'admin' | 'nsAdmin' | 'team' | 'both' | 'plain';

interface Deployment {
  prefix: string;
  url: string;
  runnerIds: { def: string; team: string; any: string };
  token(who: Who): string;
  call<T = Record<string, unknown>>(who: Who, method: string, path: string, opts?: { body?: unknown; ns?: string }): Promise<{ status: number; body: T }>;
}

async function deploy(t: TestContext, broker: 'bullmq' | 'rabbitmq'): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), 'drover-ns-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokens: Record<Who, string> = { admin: `adm-${hex(16)}`, nsAdmin: `nsa-${hex(16)}`, team: `team-${hex(16)}`, both: `both-${hex(16)}`, plain: `plain-${hex(16)}` };
  const file = join(dir, 'tokens.json');
  writeFileSync(file, JSON.stringify({ tokens: [
    { name: 'admin', token: tokens.admin, scope: 'admin', namespaces: '*' },
    // An admin of default only: may not create namespaces.
    { name: 'ns-admin', token: tokens.nsAdmin, scope: 'admin', namespaces: ['default'] },
    { name: 'team', token: tokens.team, scope: 'submit', namespaces: ['team-a'] },
    { name: 'both', token: tokens.both, scope: 'submit', namespaces: ['default', 'team-a'] },
    // No namespaces: default only, as every token of a deployment from before namespaces.
    { name: 'plain', token: tokens.plain, scope: 'submit' },
  ] }), { mode: 0o600 });
  const prefix = testPrefix();
  const port = await freePort();
  const env = { DROVER_BROKER: broker, SCHEDULER_TICK_MS: '50' };
  startService(t, 'api', prefix, { ...env, DROVER_PORT: String(port), DROVER_TOKENS_FILE: file, DROVER_RATE_LIMIT: '0', DROVER_AUTH_FAIL_LIMIT: '0' });
  const url = `http://127.0.0.1:${port}`;
  await until('the API', () => fetch(`${url}/healthz`).then((r) => r.ok, () => false));
  const runnerIds = { def: `def-${hex(3)}`, team: `team-${hex(3)}`, any: `any-${hex(3)}` };
  await Promise.all([
    startServiceReady(t, 'scheduler', prefix, env),
    startServiceReady(t, 'runner', prefix, { ...env, RUNNER_ID: runnerIds.def, RUNNER_NAMESPACE: 'default', RUNNER_QUEUES: '*' }),
    // team-a is listed before it exists: the runner serves it as soon as jobs can be submitted there.
    startServiceReady(t, 'runner', prefix, { ...env, RUNNER_ID: runnerIds.team, RUNNER_NAMESPACE: 'team-a', RUNNER_QUEUES: '*' }),
    // Every namespace, on one queue only no other runner serves: it must find namespaces created after it started.
    startServiceReady(t, 'runner', prefix, { ...env, RUNNER_ID: runnerIds.any, RUNNER_NAMESPACE: '*', RUNNER_QUEUES: 'late', RUNNER_QUEUE_SCAN_MS: '200' }),
  ]);
  return {
    prefix, url, runnerIds,
    token: (w) => tokens[w],
    call: async <T>(who: Who, method: string, path: string, opts: { body?: unknown; ns?: string } = {}) => {
      const headers: Record<string, string> = { authorization: `Bearer ${tokens[who]}` };
      if (opts.ns !== undefined) headers['drover-namespace'] = opts.ns;
      if (opts.body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}${path}`, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
  };
}

const ended = (d: Deployment, who: Who, id: string, ns?: string): Promise<JobRecord> =>
  until(`job ${id} to end`, async () => {
    const r = await d.call<JobRecord>(who, 'GET', `/v1/jobs/${id}`, ns === undefined ? {} : { ns });
    return r.status === 200 && isTerminal(r.body.status) && r.body;
  }, 30_000);

brokerTest('namespaces: separate jobs, queues, schedules, events and runners; tokens see only theirs; the default namespace is the old keys', async (t, broker) => {
  const d = await deploy(t, broker);
  const redis = new Redis(REDIS_URL);
  t.after(() => redis.disconnect());

  // Creating: admin of every namespace only; names checked; once.
  assert.equal((await d.call('admin', 'POST', '/v1/namespaces', { body: { name: 'team-a', description: 'the A team' } })).status, 201);
  assert.equal((await d.call('admin', 'POST', '/v1/namespaces', { body: { name: 'team-a' } })).status, 409);
  for (const name of ['Team-A', '-a', 'a_b', 'x'.repeat(41), 'a/b']) {
    const bad = await d.call<{ error: { code: string; message: string } }>('admin', 'POST', '/v1/namespaces', { body: { name } });
    assert.equal(bad.status, 400, name);
    assert.equal(bad.body.error.code, 'VALIDATION');
  }
  assert.equal((await d.call('nsAdmin', 'POST', '/v1/namespaces', { body: { name: 'team-z' } })).status, 403, 'an admin of default only');
  assert.equal((await d.call('team', 'POST', '/v1/namespaces', { body: { name: 'team-z' } })).status, 403);
  const listed = async (who: Who): Promise<string[]> => (await d.call<{ items: { name: string }[] }>(who, 'GET', '/v1/namespaces')).body.items.map((n) => n.name);
  assert.deepEqual(await listed('admin'), ['default', 'team-a']);
  assert.deepEqual(await listed('team'), ['team-a']);
  assert.deepEqual(await listed('plain'), ['default']);
  assert.deepEqual(await listed('both'), ['default', 'team-a']);

  // A token of one namespace needs to name none; a token of two is in default unless it names one.
  const who = await d.call<{ namespace: string; namespaces: string[] }>('team', 'GET', '/v1/whoami');
  assert.deepEqual([who.body.namespace, who.body.namespaces], ['team-a', ['team-a']]);
  assert.equal((await d.call<{ namespace: string }>('both', 'GET', '/v1/whoami')).body.namespace, 'default');
  assert.equal((await d.call<{ namespace: string }>('both', 'GET', '/v1/whoami', { ns: 'team-a' })).body.namespace, 'team-a');
  assert.equal((await d.call<{ namespace: string }>('both', 'GET', '/v1/whoami?namespace=team-a')).body.namespace, 'team-a');

  const teamJob = (await d.call<JobRecord>('team', 'POST', '/v1/jobs', { body: { command: 'echo in-team-a', queue: 'work' } })).body;
  const defJob = (await d.call<JobRecord>('plain', 'POST', '/v1/jobs', { body: { command: 'echo in-default', queue: 'work' } })).body;
  const teamEnd = await ended(d, 'team', teamJob.id);
  const defEnd = await ended(d, 'plain', defJob.id);
  assert.deepEqual([teamEnd.status, teamEnd.runnerId], ['succeeded', d.runnerIds.team], 'the job of team-a ran on the runner of team-a');
  assert.deepEqual([defEnd.status, defEnd.runnerId], ['succeeded', d.runnerIds.def]);

  // Every way to reach the other namespace's job fails alike: no route, header or query reveals it.
  const notFound = (await d.call<{ error: { message: string } }>('plain', 'GET', `/v1/jobs/${teamJob.id}`, { ns: 'team-a' }));
  assert.equal(notFound.status, 404);
  const unknown = await d.call<{ error: { message: string } }>('plain', 'GET', `/v1/jobs/${teamJob.id}`, { ns: 'team-q' });
  assert.equal(unknown.status, 404);
  assert.equal(notFound.body.error.message.replace('team-a', 'X'), unknown.body.error.message.replace('team-q', 'X'), 'the same answer for a namespace that exists and one that does not');
  assert.equal((await d.call('plain', 'GET', `/v1/jobs/${teamJob.id}?namespace=team-a`)).status, 404);
  assert.equal((await d.call('plain', 'GET', `/v1/jobs/${teamJob.id}`)).status, 404, 'not in default');
  assert.equal((await d.call('team', 'GET', `/v1/jobs/${defJob.id}`)).status, 404);
  assert.equal((await d.call('team', 'GET', `/v1/jobs/${defJob.id}`, { ns: 'default' })).status, 404, 'a token of team-a naming default');
  assert.equal((await d.call('team', 'POST', `/v1/jobs/${defJob.id}/cancel`, { ns: 'default' })).status, 404);
  assert.equal((await d.call('both', 'GET', `/v1/jobs/${teamJob.id}`)).status, 404, 'a token of two namespaces is in default without a name');
  assert.equal((await d.call('both', 'GET', `/v1/jobs/${teamJob.id}`, { ns: 'team-a' })).status, 200);
  assert.equal((await d.call('admin', 'GET', `/v1/jobs/${teamJob.id}`, { ns: 'team-a' })).status, 200);
  // Without any token the answer is the plain 401, whichever namespace is named.
  for (const ns of ['team-a', 'team-q']) {
    const anon = await fetch(`${d.url}/v1/jobs/${teamJob.id}`, { headers: { 'drover-namespace': ns } });
    assert.equal(anon.status, 401, ns);
  }
  // Malformed or contradictory names are a 400, never the default namespace.
  assert.equal((await d.call('admin', 'GET', '/v1/jobs', { ns: 'Team-A' })).status, 400);
  assert.equal((await d.call('admin', 'GET', '/v1/jobs?namespace=default', { ns: 'team-a' })).status, 400);

  // A legacy client whose token travels in its body is given the namespace in its base URL: /ns/<name>/...
  assert.equal((await d.call('team', 'POST', '/v1/schedules', { body: { name: 'qs', cron: '0 0 1 1 *', job: { command: 'true' } } })).status, 201);
  const enabled = async (): Promise<boolean> => (await d.call<{ enabled: boolean }>('team', 'GET', '/v1/schedules/qs')).body.enabled;
  const legacy = (path: string, token: string): Promise<Response> =>
    fetch(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jobs: ['qs'], token }) });
  assert.equal((await legacy('/ns/team-a/api/jobs/off.do', d.token('team'))).status, 200);
  assert.equal(await enabled(), false, 'the path form reached team-a with a body token');
  // Not named: the body token's namespace is not guessed after routing; the default namespace does not serve it.
  await legacy('/api/jobs/on.do', d.token('team'));
  // A token of default only, naming team-a in the path: refused like any other way in.
  await legacy('/ns/team-a/api/jobs/on.do', d.token('plain'));
  assert.equal(await enabled(), false, 'neither request changed the schedule of team-a');
  const info = await fetch(`${d.url}/ns/team-a/api/jobs/qs.do?token=${d.token('team')}`);
  assert.equal(info.status, 200, await info.clone().text());
  assert.equal((await fetch(`${d.url}/ns/team-q/api/jobs/qs.do?token=${d.token('team')}`)).status, 404, 'a token in the query is seen by the front door');
  assert.equal((await fetch(`${d.url}/ns/Bad_Name/v1/jobs`, { headers: { authorization: `Bearer ${d.token('admin')}` } })).status, 400);
  assert.equal((await fetch(`${d.url}/ns/team-a/v1/jobs`, { headers: { authorization: `Bearer ${d.token('admin')}`, 'drover-namespace': 'default' } })).status, 400);

  // Lists, queues, runners, events: each namespace sees its own.
  const ids = async (w: Who, ns?: string): Promise<string[]> =>
    (await d.call<{ items: JobRecord[] }>(w, 'GET', '/v1/jobs', ns === undefined ? {} : { ns })).body.items.map((j) => j.id);
  assert.deepEqual(await ids('team'), [teamJob.id]);
  assert.deepEqual(await ids('plain'), [defJob.id]);
  const runners = async (ns: string): Promise<string[]> =>
    (await d.call<{ items: { id: string }[] }>('admin', 'GET', '/v1/runners', { ns })).body.items.map((r) => r.id).sort();
  // The runner of every namespace finds team-a on its next look at the registry (every 2 s), then registers there.
  const inTeam = [`${d.runnerIds.any}@team-a`, d.runnerIds.team].sort();
  await until('the runner of every namespace in team-a', async () => JSON.stringify(await runners('team-a')) === JSON.stringify(inTeam));
  assert.deepEqual(await runners('team-a'), inTeam);
  assert.deepEqual(await runners('default'), [d.runnerIds.any, d.runnerIds.def].sort());
  const eventJobs = async (w: Who): Promise<string[]> =>
    (await d.call<{ items: { jobId?: string }[] }>(w, 'GET', '/v1/events?limit=200')).body.items.map((e) => e.jobId).filter((x): x is string => !!x);
  assert.ok((await eventJobs('team')).includes(teamJob.id));
  assert.ok(!(await eventJobs('team')).includes(defJob.id), "team-a's events hold nothing of default");
  assert.ok(!(await eventJobs('plain')).includes(teamJob.id));

  // Keys: default's are the deployment's prefix as before namespaces; team-a's under a hash tag of its own.
  assert.equal(await redis.exists(`{${d.prefix}}:job:${defJob.id}`), 1);
  assert.equal(await redis.exists(`{${d.prefix}/team-a}:job:${teamJob.id}`), 1);
  assert.equal(await redis.exists(`{${d.prefix}}:job:${teamJob.id}`), 0);
  if (broker === 'rabbitmq') {
    // The broker queues are the namespace's own too (checked by name through the registry of queues it made).
    assert.ok((await redis.smembers(`{${d.prefix}/team-a}:queues`)).includes('work'));
    assert.notEqual(rabbitNames(`${d.prefix}/team-a`).queue('work'), rabbitNames(d.prefix).queue('work'));
  }

  // A namespace created after every service started: the scheduler fires its schedule, the `*` runner runs it.
  assert.equal((await d.call('admin', 'POST', '/v1/namespaces', { body: { name: 'late-ns' } })).status, 201);
  const sched = await d.call('admin', 'POST', '/v1/schedules', { ns: 'late-ns', body: { name: 'tick', cron: '@every 1s', job: { command: 'echo tick', queue: 'late' } } });
  assert.equal(sched.status, 201, JSON.stringify(sched.body));
  const ran = await until('the schedule of the new namespace to run a job', async () => {
    const r = await d.call<{ items: JobRecord[] }>('admin', 'GET', '/v1/jobs?status=succeeded', { ns: 'late-ns' });
    return r.body.items.find((j) => j.schedule === 'tick');
  }, 30_000);
  assert.equal(ran.runnerId, `${d.runnerIds.any}@late-ns`);
  assert.equal((await d.call('admin', 'GET', '/v1/schedules/tick')).status, 404, 'the schedule is not in default');
  assert.equal((await d.call('admin', 'DELETE', '/v1/schedules/tick', { ns: 'late-ns' })).status, 200);

  // Metrics carry the namespace: the API's submissions, by namespace.
  const res = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${d.token('admin')}` } });
  const metrics = parseMetrics(await res.text());
  assert.equal(metricValue(metrics, 'drover_jobs_submitted_total', { namespace: 'team-a', queue: 'work' }), 1);
  assert.equal(metricValue(metrics, 'drover_jobs_submitted_total', { namespace: 'default', queue: 'work' }), 1);
  assert.ok(metricValue(metrics, 'drover_http_request_duration_seconds_count', { namespace: 'late-ns' }) >= 1, 'request metrics of a namespace made at run time');
  // A token of one namespace reads the series of its own only: another namespace's queues are none of its business.
  const mine = parseMetrics(await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${d.token('team')}` } })).text());
  assert.ok(metricValue(mine, 'drover_jobs_submitted_total', { namespace: 'team-a' }) >= 1);
  assert.deepEqual([...new Set(mine.map((m) => m.labels.namespace).filter(Boolean))], ['team-a']);
});
