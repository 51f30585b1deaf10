// A token restricted to queues stays in them, on every route: the test walks the API's own route table, so a
// route added without a decision about queue scoping fails here until it has one and an example below.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { routeTable } from '@drover/api';
import type { JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';

const FOREIGN_QUEUE = 'default';
const OWN_QUEUE = 'ci';

interface Call {
  path: string;
  body?: unknown;
  /** Form body instead of JSON (Coyotes' adapter). */
  form?: Record<string, string>;
  /** Identifiers of the addressed foreign resource, replaced by a placeholder when answers are compared. */
  ids?: string[];
}

/** Builds fresh resources of the foreign queue for one call (routes that change or delete them get their own). */
class Fixtures {
  readonly foreignIds = new Set<string>();
  private n = 0;
  constructor(readonly s: Stack) {}

  private seen<T extends string>(id: T): T {
    this.foreignIds.add(id);
    return id;
  }
  async delayedJob(): Promise<string> {
    return this.seen((await this.s.submit({ command: 'true', delayMs: 600_000, queue: FOREIGN_QUEUE })).id);
  }
  async finishedJob(command = 'false'): Promise<string> {
    const job = await this.s.run({ command, queue: FOREIGN_QUEUE });
    return this.seen(job.id);
  }
  async schedule(): Promise<string> {
    const name = `sched-${randomBytes(4).toString('hex')}-${this.n++}`;
    const res = await this.s.request('POST', '/v1/schedules', { name, cron: '0 0 1 1 *', job: { command: 'true', queue: FOREIGN_QUEUE, env: { SECRET_VALUE: 'hunter2' } } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return this.seen(name);
  }
  async workflow(): Promise<string> {
    const res = await this.s.request<{ id: string }>('POST', '/v1/workflows', { name: 'wf', steps: [{ name: 'a', job: { command: 'false', queue: FOREIGN_QUEUE } }] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = this.seen(res.body.id);
    // Restart needs a finished workflow.
    for (let i = 0; i < 400; i++) {
      const wf = await this.s.request<{ status: string }>('GET', `/v1/workflows/${id}`);
      if (wf.body.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    return id;
  }
  async meprocTask(): Promise<string> {
    const name = this.seen(`task-${randomBytes(4).toString('hex')}`);
    const res = await this.s.request('POST', '/proc', { name, cmd: 'sleep 60', type: 'once', replica: 1 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return name;
  }
}

const ghostJob = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

/**
 * One example per route: a request the unrestricted token may make (it must answer 2xx), aimed at a resource of
 * FOREIGN_QUEUE. `ghost` asks for the same request on a resource that does not exist (resource routes only).
 */
const EXAMPLES: Record<string, (fx: Fixtures, s: Stack, ghost: boolean) => Promise<Call>> = {
  'GET /metrics': async () => ({ path: '/metrics' }),
  'GET /v1/events': async (fx) => (await fx.finishedJob('true'), { path: '/v1/events?after=0-0&limit=1000' }),
  'POST /v1/webhooks': async () => ({ path: '/v1/webhooks', body: { url: 'http://127.0.0.1:9/hook' } }),
  'GET /v1/webhooks': async () => ({ path: '/v1/webhooks' }),
  'GET /v1/webhooks/:id': async (_f, s) => ({ path: `/v1/webhooks/${await webhook(s)}` }),
  'PATCH /v1/webhooks/:id': async (_f, s) => ({ path: `/v1/webhooks/${await webhook(s)}`, body: { enabled: false } }),
  'DELETE /v1/webhooks/:id': async (_f, s) => ({ path: `/v1/webhooks/${await webhook(s)}` }),
  'GET /v1/webhooks/:id/deliveries': async (_f, s) => ({ path: `/v1/webhooks/${await webhook(s)}/deliveries` }),
  'GET /v1/jobs/:id/deliveries': async (fx, _s, g) => job(g ? ghostJob : await fx.delayedJob(), '/deliveries'),
  'POST /v1/workflows': async () => ({ path: '/v1/workflows', body: { name: 'w', steps: [{ name: 'a', job: { command: 'true', queue: FOREIGN_QUEUE } }] } }),
  'GET /v1/workflows': async (fx) => (await fx.workflow(), { path: '/v1/workflows' }),
  'GET /v1/workflows/:id': async (fx, _s, g) => workflowCall(g ? ghostJob : await fx.workflow(), ''),
  'POST /v1/workflows/:id/cancel': async (fx, _s, g) => workflowCall(g ? ghostJob : await fx.workflow(), '/cancel'),
  'POST /v1/workflows/:id/restart': async (fx, _s, g) => ({ ...workflowCall(g ? ghostJob : await fx.workflow(), '/restart'), body: { mode: 'whole' } }),
  'POST /v1/jobs': async () => ({ path: '/v1/jobs', body: { command: 'true', queue: FOREIGN_QUEUE, delayMs: 600_000 } }),
  'POST /v1/jobs/batch': async () => ({ path: '/v1/jobs/batch', body: { jobs: [{ command: 'true', queue: OWN_QUEUE, delayMs: 600_000 }, { command: 'true', queue: FOREIGN_QUEUE, delayMs: 600_000 }] } }),
  'GET /v1/jobs': async (fx) => (await fx.delayedJob(), { path: `/v1/jobs?queue=${FOREIGN_QUEUE}` }),
  'GET /v1/jobs/:id': async (fx, _s, g) => job(g ? ghostJob : await fx.delayedJob(), ''),
  'GET /v1/jobs/:id/logs': async (fx, _s, g) => job(g ? ghostJob : await fx.finishedJob('echo secret-output'), '/logs'),
  'POST /v1/jobs/:id/retry': async (fx, _s, g) => job(g ? ghostJob : await fx.finishedJob(), '/retry'),
  'POST /v1/jobs/:id/cancel': async (fx, _s, g) => job(g ? ghostJob : await fx.delayedJob(), '/cancel'),
  'POST /v1/jobs/:id/promote': async (fx, _s, g) => job(g ? ghostJob : await fx.delayedJob(), '/promote'),
  'DELETE /v1/jobs/:id': async (fx, _s, g) => job(g ? ghostJob : await fx.finishedJob(), ''),
  'POST /v1/schedules': async () => ({ path: '/v1/schedules', body: { name: `new-${randomBytes(4).toString('hex')}`, cron: '0 0 1 1 *', job: { command: 'true', queue: FOREIGN_QUEUE } } }),
  'GET /v1/schedules': async (fx) => (await fx.schedule(), { path: '/v1/schedules?limit=1000' }),
  'GET /v1/schedules/:name': async (fx, _s, g) => sched(g ? 'ghost-schedule' : await fx.schedule(), ''),
  // The takeover: rewriting another queue's schedule into the token's own queue.
  'PUT /v1/schedules/:name': async (fx, _s, g) => ({ ...sched(g ? 'ghost-schedule' : await fx.schedule(), ''), body: { job: { command: 'id', queue: OWN_QUEUE } } }),
  'DELETE /v1/schedules/:name': async (fx, _s, g) => sched(g ? 'ghost-schedule' : await fx.schedule(), '?kill=1'),
  'POST /v1/schedules/:name/kill': async (fx, _s, g) => sched(g ? 'ghost-schedule' : await fx.schedule(), '/kill'),
  'POST /v1/schedules/:name/enable': async (fx, _s, g) => sched(g ? 'ghost-schedule' : await fx.schedule(), '/enable'),
  'POST /v1/schedules/:name/disable': async (fx, _s, g) => sched(g ? 'ghost-schedule' : await fx.schedule(), '/disable'),
  'POST /v1/schedules/enable': async (fx) => ({ path: '/v1/schedules/enable', body: { names: [await fx.schedule()] } }),
  'POST /v1/schedules/disable': async (fx) => ({ path: '/v1/schedules/disable', body: { names: [await fx.schedule()] } }),
  'POST /v1/schedules/:name/trigger': async (fx, _s, g) => ({ ...sched(g ? 'ghost-schedule' : await fx.schedule(), '/trigger'), body: {} }),
  'GET /v1/schedules/:name/runs': async (fx, s, g) => {
    if (g) return sched('ghost-schedule', '/runs');
    const name = await fx.schedule();
    const fired = await s.request<JobRecord>('POST', `/v1/schedules/${name}/trigger`, { delayMs: 600_000 });
    fx.foreignIds.add(fired.body.id);
    return sched(name, '/runs');
  },
  'GET /v1/queues': async (fx) => (await fx.delayedJob(), { path: '/v1/queues' }),
  // A delayed job: an earlier example (runner drain) may have taken the runner offline.
  'GET /v1/stats': async (fx) => (await fx.delayedJob(), { path: '/v1/stats?range=day' }),
  'GET /v1/queues/:name': async (fx, _s, g) => (await fx.delayedJob(), queue(g ? 'ghost-queue' : FOREIGN_QUEUE, '')),
  'PUT /v1/queues/:name': async (_f, _s, g) => ({ ...queue(g ? 'ghost-queue' : FOREIGN_QUEUE, ''), body: { concurrency: 3 } }),
  'POST /v1/queues/:name/pause': async (_f, _s, g) => queue(g ? 'ghost-queue' : FOREIGN_QUEUE, '/pause'),
  'POST /v1/queues/:name/resume': async (_f, _s, g) => queue(g ? 'ghost-queue' : FOREIGN_QUEUE, '/resume'),
  'DELETE /v1/queues/:name/jobs': async (fx, _s, g) => (await fx.delayedJob(), queue(g ? 'ghost-queue' : FOREIGN_QUEUE, '/jobs?status=waiting')),
  'POST /v1/queues/:name/retry': async (fx, _s, g) => (await fx.finishedJob(), { ...queue(g ? 'ghost-queue' : FOREIGN_QUEUE, '/retry'), body: { status: 'failed' } }),
  'GET /v1/runners': async (fx) => (await runningJob(fx), { path: '/v1/runners' }),
  'GET /v1/runners/:id': async (fx, s) => (await runningJob(fx), { path: `/v1/runners/${s.config.runner.id}` }),
  'GET /v1/runners/:id/jobs': async (fx, s) => (await runningJob(fx), { path: `/v1/runners/${s.config.runner.id}/jobs` }),
  'POST /v1/runners/:id/drain': async (_f, s) => ({ path: `/v1/runners/${s.config.runner.id}/drain?force=1` }),
  'POST /v1/runners/:id/resume': async (_f, s) => ({ path: `/v1/runners/${s.config.runner.id}/resume` }),
  'POST /proc': async () => ({ path: '/proc', body: { name: `t-${randomBytes(4).toString('hex')}`, cmd: 'true', type: 'once', replica: 1 } }),
  'PUT /proc': async (fx, _s, g) => proc(g ? 'ghost-task' : await fx.meprocTask()),
  'DELETE /proc': async (fx, _s, g) => proc(g ? 'ghost-task' : await fx.meprocTask()),
  'GET /proc': async (fx) => (await fx.meprocTask(), { path: '/proc' }),
  'GET /proc/output': async (fx, _s, g) => ({ ...proc(g ? 'ghost-task' : await fx.meprocTask()), path: `/proc/output?name=${g ? 'ghost-task' : await fx.meprocTask()}` }),
  // Meproc answers /proc/output whatever the method.
  ...Object.fromEntries(['POST', 'PUT', 'DELETE', 'PATCH'].map((m) => [`${m} /proc/output`, async (fx: Fixtures, _s: Stack, g: boolean) => {
    const name = g ? 'ghost-task' : await fx.meprocTask();
    return { ...proc(name), path: `/proc/output?name=${name}` };
  }])),
  'GET /channels': async (fx) => (await fx.delayedJob(), { path: '/channels' }),
  'POST /channels': async () => ({ path: '/channels', form: { name: FOREIGN_QUEUE, worker: '4' } }),
  'GET /channels/:name': async (fx, _s, g) => (await fx.delayedJob(), channel(g ? 'ghost-channel' : FOREIGN_QUEUE, '')),
  'DELETE /channels/:name': async (fx, s, g) => {
    await s.request('PUT', `/v1/queues/${FOREIGN_QUEUE}`, { concurrency: 9 });
    return channel(g ? 'ghost-channel' : FOREIGN_QUEUE, '');
  },
  'POST /channels/:name': async () => ({ ...channel(FOREIGN_QUEUE, ''), form: { task: 'true' } }),
  'POST /channels/:name/tasks': async () => ({ ...channel(FOREIGN_QUEUE, '/tasks'), form: { task: 'true' } }),
  'GET /channels/:name/failed-tasks': async (fx, _s, g) => (await fx.finishedJob(), channel(g ? 'ghost-channel' : FOREIGN_QUEUE, '/failed-tasks')),
  'GET /channels/:name/failed-tasks/:id': async (fx, _s, g) => {
    const [id, name] = g ? [ghostJob, 'ghost-channel'] : [await fx.finishedJob(), FOREIGN_QUEUE];
    return { ...channel(name, `/failed-tasks/${id}`), ids: [id, name] };
  },
  'POST /channels/:name/failed-tasks/:id': async (fx, _s, g) => {
    const [id, name] = g ? [ghostJob, 'ghost-channel'] : [await fx.finishedJob(), FOREIGN_QUEUE];
    return { ...channel(name, `/failed-tasks/${id}`), ids: [id, name], form: {} };
  },
  'DELETE /channels/:name/failed-tasks/:id': async (fx, _s, g) => {
    const [id, name] = g ? [ghostJob, 'ghost-channel'] : [await fx.finishedJob(), FOREIGN_QUEUE];
    return { ...channel(name, `/failed-tasks/${id}`), ids: [id, name] };
  },
  'GET /delay-tasks': async (fx) => (await fx.delayedJob(), { path: '/delay-tasks' }),
  'GET /delay-tasks/:id': async (fx, _s, g) => delayTask(g ? ghostJob : await fx.delayedJob()),
  'DELETE /delay-tasks/:id': async (fx, _s, g) => delayTask(g ? ghostJob : await fx.delayedJob()),
  'PUT /v1/variables/:name': async () => ({ path: '/v1/variables/SCOPED', body: { value: '1' } }),
  'GET /v1/variables': async () => ({ path: '/v1/variables' }),
  'POST /v1/namespaces': async () => ({ path: '/v1/namespaces', body: { name: `scoped-${randomBytes(3).toString('hex')}` } }),
  'DELETE /v1/variables/:name': async (_f, s) => {
    await s.request('PUT', '/v1/variables/TO_DELETE', { value: '1' });
    return { path: '/v1/variables/TO_DELETE' };
  },
  // Calendars are global admin objects, as variables are: refused to a restricted token whatever it asks.
  'PUT /v1/calendars/:name': async () => ({ path: '/v1/calendars/scoped', body: { dates: ['2030-12-25'] } }),
  'GET /v1/calendars': async (_f, s) => (await s.request('PUT', '/v1/calendars/listed', { dates: ['2030-12-25'] }), { path: '/v1/calendars' }),
  'GET /v1/calendars/:name': async (_f, s) => (await s.request('PUT', '/v1/calendars/seen', { dates: ['2030-12-25'] }), { path: '/v1/calendars/seen' }),
  'DELETE /v1/calendars/:name': async (_f, s) => (await s.request('PUT', '/v1/calendars/to-delete', { dates: [] }), { path: '/v1/calendars/to-delete' }),
  // Keeper (seed 002): jobs are schedules, tasks runs (here a workflow's), actions jobs.
  'PUT /task/instant/:jobId': async (fx, _s, g) => keeper('/task/instant/:jobId', g ? 'ghost-schedule' : await fx.schedule(), '?delay=60'),
  'PUT /task/restart/:taskId': async (fx, _s, g) => keeper('/task/restart/:taskId', g ? ghostJob : await fx.workflow(), '?more=EXCEPTIONAL'),
  'PUT /task/restrat/:taskId': async (fx, _s, g) => keeper('/task/restrat/:taskId', g ? ghostJob : await fx.workflow(), '?more=EXCEPTIONAL'),
  'PUT /task/kill/:taskId': async (fx, _s, g) => keeper('/task/kill/:taskId', g ? ghostJob : await fx.workflow()),
  'PUT /kill/task/:taskId': async (fx, _s, g) => keeper('/kill/task/:taskId', g ? ghostJob : await fx.workflow()),
  'PUT /job/kill/:jobId': async (fx, _s, g) => keeper('/job/kill/:jobId', g ? 'ghost-schedule' : await fx.schedule()),
  'PUT /action/kill/:actionId': async (fx, _s, g) => keeper('/action/kill/:actionId', g ? ghostJob : await fx.delayedJob()),
  'GET /task/logs': async (fx, _s, g) => keeper('/task/logs?taskId=:taskId', g ? ghostJob : await fx.workflow()),
  'PUT /global/set': async () => ({ path: '/global/set?name=KEEPER_SCOPED&value=1' }),
  // qschedule (seed 003): jobs are schedules; the token may also come in the body or ?token= (here the header).
  'POST /api/jobs/on.do': async (fx) => ({ path: '/api/jobs/on.do', body: { jobs: [await fx.schedule()] } }),
  'POST /api/jobs/off.do': async (fx) => ({ path: '/api/jobs/off.do', body: { jobs: [await fx.schedule()] } }),
  'GET /api/jobs/:file': async (fx) => ({ path: `/api/jobs/${await fx.schedule()}.do` }),
  'POST /api/tasks.do': async (fx) => ({ path: '/api/tasks.do', body: { job: await fx.schedule(), param: { x: '1' } } }),
  'POST /api/workers/state.do': async (fx) => ({ path: '/api/workers/state.do', body: { jobName: await fx.schedule(), workers: { 'ghost-host:20010': false } } }),
  'GET /api/workers/:file': async (fx) => ({ path: `/api/workers/${await fx.schedule()}.do` }),
  'GET /api/check/:file': async (fx, s) => {
    // A run of a foreign schedule in progress on this host: the restricted token must not see the schedule.
    const name = await fx.schedule();
    await s.request('PUT', `/v1/schedules/${name}`, { job: { command: 'sleep 30', queue: FOREIGN_QUEUE } });
    const run = await s.request<{ id: string }>('POST', `/v1/schedules/${name}/trigger`, {});
    fx.foreignIds.add(run.body.id);
    await s.waitFor(run.body.id, (j) => j.status === 'running');
    return { path: `/api/check/${hostname()}.do` };
  },
};

const job = (id: string, rest: string): Call => ({ path: `/v1/jobs/${id}${rest}`, ids: [id] });
const workflowCall = (id: string, rest: string): Call => ({ path: `/v1/workflows/${id}${rest}`, ids: [id] });
const sched = (name: string, rest: string): Call => ({ path: `/v1/schedules/${name}${rest}`, ids: [name] });
const queue = (name: string, rest: string): Call => ({ path: `/v1/queues/${name}${rest}`, ids: [name] });
const channel = (name: string, rest: string): Call => ({ path: `/channels/${name}${rest}`, ids: [name] });
const proc = (name: string): Call => ({ path: `/proc?name=${name}`, ids: [name] });
const delayTask = (id: string): Call => ({ path: `/delay-tasks/${id}`, ids: [id] });
const keeper = (route: string, id: string, query = ''): Call => ({ path: `${route.replace(/:\w+/, id)}${query}`, ids: [id] });

async function webhook(s: Stack): Promise<string> {
  const res = await s.request<{ id: string }>('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook', queues: [FOREIGN_QUEUE] });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}

async function runningJob(fx: Fixtures): Promise<void> {
  const s = fx.s;
  const id = (await s.submit({ command: 'sleep 30', queue: FOREIGN_QUEUE })).id;
  fx.foreignIds.add(id);
  await s.waitFor(id, (j) => j.status === 'running');
}

async function send(s: Stack, method: string, call: Call, token: string): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  let body: string | undefined;
  if (call.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(call.form).toString();
  } else if (call.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(call.body);
  }
  const res = await fetch(`${s.url}${call.path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, text: await res.text() };
}

const is2xx = (status: number): boolean => status >= 200 && status < 300;
const mask = (text: string, ids: string[] = []): string => ids.reduce((t, id) => t.split(id).join('<id>'), text);

test('every route x a token restricted to another queue: never 2xx on that queue\'s resources, lists filtered, no existence oracle', async (t) => {
  const s = await startStack(t, { env: { DROVER_OUTBOUND_ALLOW: '127.0.0.1', RUNNER_CONCURRENCY: '20' } });
  const restricted = randomBytes(24).toString('base64url');
  // Admin scope: only the queue restriction stands between this token and the resource.
  s.registry.add(restricted, { name: 'ci-admin', scope: 'admin', queues: [OWN_QUEUE] });
  const fx = new Fixtures(s);
  // The docs and the dashboard's static files are open and hold no queue's data.
  const routes = routeTable(s.api.app).filter((r) => !/^\/(docs|ui)(\/|$)/.test(r.url) && r.guard !== 'none');
  assert.ok(routes.length > 50, `the route table looks incomplete (${routes.length} routes)`);
  const missing = routes.map((r) => `${r.method} ${r.url}`).filter((k) => !EXAMPLES[k]);
  assert.deepEqual(missing, [], 'every route needs an example here (and a queue guard in its config)');

  for (const route of routes) {
    const key = `${route.method} ${route.url}`;
    await t.test(key, async () => {
      const call = await EXAMPLES[key]!(fx, s, false);
      const denied = await send(s, route.method, call, restricted);
      if (route.guard === 'global') assert.equal(denied.status, 403, `${key}: ${denied.text}`);
      else if (route.guard === 'handler') {
        // A list may answer, without any foreign resource in it; a create into the foreign queue may not.
        if (is2xx(denied.status)) {
          for (const id of fx.foreignIds) assert.ok(!denied.text.includes(id), `${key} showed ${id} of queue ${FOREIGN_QUEUE}: ${denied.text.slice(0, 300)}`);
          assert.ok(!denied.text.includes('hunter2'));
        }
      } else {
        assert.ok(!is2xx(denied.status), `${key} answered ${denied.status}: ${denied.text.slice(0, 300)}`);
        // No oracle: another queue's resource gets exactly the answer a resource that does not exist gets.
        const ghost = await send(s, route.method, await EXAMPLES[key]!(fx, s, true), restricted);
        assert.equal(denied.status, ghost.status, `${key}: foreign ${denied.text} vs missing ${ghost.text}`);
        assert.equal(mask(denied.text, call.ids), mask(ghost.text, (await EXAMPLES[key]!(fx, s, true)).ids), key);
      }
      // The same request with an unrestricted token succeeds: the restricted one was refused for its queue alone.
      const allowed = await send(s, route.method, call, s.tokens.admin);
      assert.ok(is2xx(allowed.status), `${key} with the unrestricted token answered ${allowed.status}: ${allowed.text.slice(0, 300)}`);
      assert.ok(!allowed.text.includes('hunter2'), `${key} returned an env value`);
    });
  }
  // Resume the runner the drain example took offline, so the stack closes cleanly.
  await s.request('POST', `/v1/runners/${s.config.runner.id}/resume`);
});

test('a restricted token cannot depend on, take over or cancel by name another queue\'s work', async (t) => {
  const s = await startStack(t, { runner: false });
  const ci = randomBytes(24).toString('base64url');
  s.registry.add(ci, { name: 'ci', scope: 'submit', queues: [OWN_QUEUE] });
  const foreign = await s.submit({ command: 'true', delayMs: 600_000 });
  const viaForeign = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', { queue: OWN_QUEUE, command: 'true', dependsOn: [foreign.id] }, ci);
  const viaGhost = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', { queue: OWN_QUEUE, command: 'true', dependsOn: [ghostJob] }, ci);
  assert.equal(viaForeign.status, 400);
  assert.equal(viaForeign.status, viaGhost.status);
  assert.equal(mask(JSON.stringify(viaForeign.body), [foreign.id]), mask(JSON.stringify(viaGhost.body), [ghostJob]), 'dependsOn is not an existence oracle');
  const batch = await s.request('POST', '/v1/jobs/batch', { jobs: [{ queue: OWN_QUEUE, command: 'true', dependsOn: [foreign.id] }] }, ci);
  assert.equal(batch.status, 400);
  // A batch names the item and place of the dependency, for another queue's job as for a missing one.
  const named = async (dep: string) =>
    (await s.request<{ error: { message: string; details: { field: string }[] } }>('POST', '/v1/jobs/batch', { jobs: [{ queue: OWN_QUEUE, command: 'true' }, { queue: OWN_QUEUE, command: 'true', dependsOn: [dep] }] }, ci)).body.error;
  const foreignNamed = await named(foreign.id);
  assert.equal(foreignNamed.message, `jobs/1/dependsOn/0: no job ${foreign.id}`);
  assert.equal(foreignNamed.details[0]?.field, 'jobs/1/dependsOn/0');
  assert.equal(mask(JSON.stringify(foreignNamed), [foreign.id]), mask(JSON.stringify(await named(ghostJob)), [ghostJob]), 'the batch error is no oracle either');
  const mine = (await s.request<{ items: JobRecord[] }>('GET', `/v1/jobs?queue=${OWN_QUEUE}`, undefined, ci)).body.items;
  assert.deepEqual(mine, [], 'nothing was stored');

  // Meproc's DELETE /proc?name= stops the task's own jobs, not jobs that happen to share its name in other queues.
  const namesake = await s.submit({ command: 'true', delayMs: 600_000, name: 'build', queue: 'other' });
  assert.equal((await s.request('POST', '/proc', { name: 'build', cmd: 'sleep 60', type: 'once', replica: 1 })).status, 200);
  assert.equal((await s.request('DELETE', '/proc?name=build')).status, 200);
  assert.equal((await s.waitFor(namesake.id, () => true)).status, 'delayed', 'a job of another queue named like the task was left alone');

  // Schedules answer env names, never values, to every token.
  await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: 'backup', env: { DB_PASSWORD: 'hunter2' } } });
  for (const path of ['/v1/schedules', '/v1/schedules/nightly']) {
    const res = await s.request<unknown>('GET', path, undefined, s.tokens.read);
    assert.equal(res.status, 200);
    assert.ok(!JSON.stringify(res.body).includes('hunter2'), `${path} returned an env value`);
    assert.ok(JSON.stringify(res.body).includes('DB_PASSWORD'), `${path} names the variable`);
  }
});
