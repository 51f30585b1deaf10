// Keeper's REST control API (seed 002) on Drover: the page's calls replayed in its order, with their answers and
// their effects on schedules (Keeper jobs), runs (tasks) and jobs (actions); bad input; queue-restricted tokens.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Step {
  name: string;
  status: string;
  jobId: string;
  jobIds: string[];
}
interface Workflow {
  id: string;
  status: string;
  schedule: string | null;
  steps: Step[];
}
interface Logs {
  logs: { line: string; stream: string; ts: string; actionId: string }[];
  cursor: string;
}

// The API's own Ajv 8: answers are checked against the OpenAPI document's schemas.
const fromApi = createRequire(new URL('../services/api/package.json', import.meta.url));
type Validate = ((data: unknown) => boolean) & { errors?: unknown };
const { Ajv } = fromApi('ajv') as { Ajv: new (o: object) => { compile(s: object): Validate; errorsText(e: unknown): string } };
const addFormats = fromApi('ajv-formats') as (ajv: unknown) => void;

/** A Keeper client: PUT unless told otherwise, the token in `?token=` as Keeper's clients send it. */
function keeperClient(s: Stack) {
  let doc: { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> } | undefined;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  return async <T = unknown>(path: string, opts: { method?: string; token?: string | null; template?: string } = {}): Promise<{ status: number; body: T }> => {
    const token = opts.token === undefined ? s.tokens.admin : opts.token;
    const url = token === null ? path : `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    const res = await fetch(`${s.url}${url}`, { method: opts.method ?? 'PUT' });
    const text = await res.text();
    const body = JSON.parse(text) as T;
    if (opts.template) {
      doc ??= (await s.request<typeof doc>('GET', '/docs/json', undefined, null)).body;
      const schema = doc!.paths[opts.template]?.[(opts.method ?? 'PUT').toLowerCase()]?.responses[String(res.status)]?.content?.['application/json']?.schema;
      assert.ok(schema, `${opts.template} documents its ${res.status}`);
      const validate = ajv.compile(schema);
      assert.ok(validate(body), `${path} ${res.status} matches its schema: ${ajv.errorsText(validate.errors)} ${text}`);
    }
    return { status: res.status, body };
  };
}

async function settled(s: Stack, id: string): Promise<Workflow> {
  return until(`workflow ${id} settled`, async () => {
    const wf = (await s.request<Workflow>('GET', `/v1/workflows/${id}`)).body;
    return wf.status !== 'running' ? wf : undefined;
  });
}
const step = (wf: Workflow, name: string): Step => wf.steps.find((x) => x.name === name)!;
const runs = async (s: Stack, schedule: string): Promise<JobRecord[]> => (await s.request<{ items: JobRecord[] }>('GET', `/v1/schedules/${schedule}/runs?limit=1000`)).body.items;

test("Keeper's page replayed in its order: kill, home, global/set, restrat, instant, kill, logs, job/kill, action/kill, reload, PQL", async (t) => {
  const s = await startStack(t, { env: { RUNNER_CONCURRENCY: '12' } });
  const keeper = keeperClient(s);
  const flag = join(tmpdir(), `drover-keeper-${s.prefix}`);
  t.after(() => rm(flag, { force: true }));
  // A Keeper job: a DAG whose middle action fails until the flag exists, and says so on stderr.
  const etl = await s.request('POST', '/v1/schedules', {
    name: 'etl', cron: '0 0 1 1 *',
    workflow: { steps: [
      { name: 'extract', job: { command: 'echo "extract quit=$QUIT_ON_NEXT_BEAT"; i=0; while [ $i -lt 150 ]; do echo "row $i"; i=$((i+1)); done' } },
      { name: 'transform', dependsOn: ['extract'], job: { command: `echo transforming; test -e ${flag} || { echo "no input" >&2; exit 3; }` } },
      { name: 'load', dependsOn: ['transform'], job: { command: 'echo loaded' } },
    ] },
  });
  assert.equal(etl.status, 201, JSON.stringify(etl.body));
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/etl/trigger');
  const first = await settled(s, fired.body.labels['drover.workflow']!);
  assert.deepEqual(first.steps.map((x) => [x.name, x.status]), [['extract', 'succeeded'], ['transform', 'failed'], ['load', 'skipped']]);

  // The page's example request, http://localhost:7700/kill/task/3306: a task that does not run answers [].
  assert.deepEqual(await keeper(`/kill/task/${first.id}`, { template: '/kill/task/{taskId}' }), { status: 200, body: [] });

  // `/`: tells that Keeper runs, without a token.
  assert.deepEqual(await keeper('/', { token: null }), { status: 200, body: 'Keeper (Drover) is running.' });

  // /global/set?name=QUIT_ON_NEXT_BEAT&value=yes: always 1; jobs started from now on see it.
  assert.deepEqual(await keeper('/global/set?name=QUIT_ON_NEXT_BEAT&value=yes', { template: '/global/set' }), { status: 200, body: 1 });
  assert.deepEqual((await s.request('GET', '/v1/variables')).body, { names: ['QUIT_ON_NEXT_BEAT'] });

  // /task/restrat/{taskId}?more=EXCEPTIONAL: the failed and skipped actions again, in the same task; extract is kept.
  await writeFile(flag, '');
  const exceptional = await keeper(`/task/restrat/${first.id}?more=EXCEPTIONAL&starter=0`, { template: '/task/restrat/{taskId}' });
  assert.deepEqual(exceptional, { status: 200, body: first.id }, 'the same task');
  const second = await settled(s, first.id);
  assert.equal(second.status, 'succeeded');
  assert.equal(step(second, 'extract').jobId, step(first, 'extract').jobId, 'the finished action is kept');
  for (const name of ['transform', 'load']) assert.notEqual(step(second, name).jobId, step(first, name).jobId, `${name} ran again`);
  // A list of action ids: from those, whatever their state (load succeeded), in the same task.
  assert.deepEqual(await keeper(`/task/restart/${first.id}?more=${step(second, 'load').jobId}`), { status: 200, body: first.id });
  const third = await settled(s, first.id);
  assert.notEqual(step(third, 'load').jobId, step(second, 'load').jobId);
  assert.equal(step(third, 'transform').jobId, step(second, 'transform').jobId);
  // WHOLE: a new task record, a new run of the job, which has seen the variable set above.
  const whole = await keeper<string>(`/task/restart/${first.id}?more=WHOLE`, { template: '/task/restart/{taskId}' });
  assert.equal(whole.status, 200);
  assert.notEqual(whole.body, first.id);
  const renewed = await settled(s, whole.body);
  assert.deepEqual([renewed.status, renewed.schedule], ['succeeded', 'etl']);
  const extractLog = await keeper<Logs>(`/task/logs?taskId=${whole.body}&actionId=${step(renewed, 'extract').jobId}&mode=debug`, { method: 'GET' });
  assert.equal(extractLog.body.logs[0]?.line, 'extract quit=yes', 'a job started after /global/set sees the variable');

  // /task/instant/{jobId}?creator=&delay=&ignore=: a new task now; with delay it shows at once as delayed.
  const instant = await keeper<string>('/task/instant/etl?creator=0&delay=0&ignore=no', { template: '/task/instant/{jobId}' });
  assert.equal((await settled(s, instant.body)).status, 'succeeded');
  const before = Date.now();
  const delayed = await keeper<string>('/task/instant/etl?delay=30');
  const delayedRun = (await s.request<Workflow>('GET', `/v1/workflows/${delayed.body}`)).body;
  const extractJob = (await runs(s, 'etl')).find((j) => j.id === step(delayedRun, 'extract').jobId)!;
  assert.equal(extractJob.status, 'delayed', 'among the schedule\'s runs at once, delayed');
  assert.ok(Date.parse(extractJob.runAt!) >= before + 30_000 && Date.parse(extractJob.runAt!) <= Date.now() + 30_000, extractJob.runAt!);
  assert.deepEqual((await s.request<JobRecord>('GET', `/v1/jobs/${step(delayedRun, 'load').jobId}`)).body.status, 'waiting');
  // A plain job with a dependency: waiting on it, or ignore=yes to run at once.
  await s.request('POST', '/v1/schedules', { name: 'report', cron: '0 0 1 1 *', job: { command: 'echo report', dependsOn: ['upstream'] } });
  const upstream = await s.submit({ command: 'sleep 30', name: 'upstream' });
  await s.waitFor(upstream.id, (j) => j.status === 'running');
  const waiting = await keeper<string>('/task/instant/report');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${waiting.body}`)).body.status, 'waiting');
  const ignored = await keeper<string>('/task/instant/report?ignore=yes');
  assert.equal((await s.waitFor(ignored.body)).status, 'succeeded', 'ignore=yes does not wait for upstream');

  // /task/kill/{taskId}: the interrupted action ids; the delayed task had nothing running: [] and it never runs.
  await s.request('POST', '/v1/schedules', { name: 'slow', cron: '0 0 1 1 *', workflow: { steps: [{ name: 'wait', job: { command: 'sleep 30' } }, { name: 'after', dependsOn: ['wait'], job: { command: 'true' } }] } });
  const slow = await keeper<string>('/task/instant/slow');
  const slowRun = (await s.request<Workflow>('GET', `/v1/workflows/${slow.body}`)).body;
  await s.waitFor(step(slowRun, 'wait').jobId, (j) => j.status === 'running');
  assert.deepEqual(await keeper(`/task/kill/${slow.body}`, { template: '/task/kill/{taskId}' }), { status: 200, body: [step(slowRun, 'wait').jobId] });
  assert.equal((await settled(s, slow.body)).status, 'cancelled');
  assert.deepEqual((await keeper(`/task/kill/${delayed.body}`)).body, []);
  assert.equal((await settled(s, delayed.body)).status, 'cancelled');

  // /task/logs: at most 100 lines a call, and the cursor to go on; mode error is stderr, debug stdout.
  const logsOf = async (query: string) => (await keeper<Logs>(`/task/logs?${query}`, { method: 'GET', template: '/task/logs' })).body;
  const base = `jobId=etl&taskId=${first.id}&recordTime=${encodeURIComponent('2024-05-01 08:00:00')}&actionId=0`;
  const lines: Logs['logs'] = [];
  let cursor = '0';
  for (let i = 0; i < 10; i++) {
    const page = await logsOf(`${base}&cursor=${cursor}&mode=all`);
    assert.ok(page.logs.length <= 100);
    if (page.logs.length === 0) break;
    lines.push(...page.logs);
    cursor = page.cursor;
  }
  const texts = lines.map((l) => l.line);
  // The first run (extract's 151 lines, transform's failure) and the two restarts in the same record.
  assert.equal(texts.filter((l) => l.startsWith('row ')).length, 150, 'every row, none twice');
  assert.deepEqual(texts.filter((l) => l === 'transforming').length, 2);
  assert.deepEqual(texts.filter((l) => l === 'loaded').length, 2);
  assert.ok(texts.indexOf('row 149') < texts.indexOf('transforming'), 'oldest first');
  const errors = await logsOf(`${base}&mode=error`);
  assert.deepEqual(errors.logs.map((l) => [l.line, l.stream, l.actionId]), [['no input', 'stderr', step(first, 'transform').jobId]]);
  const debug = await logsOf(`taskId=${first.id}&actionId=${step(first, 'transform').jobId}&mode=debug`);
  assert.deepEqual(debug.logs.map((l) => l.line), ['transforming']);
  assert.deepEqual((await logsOf(`taskId=${first.id}&cursor=${cursor}`)).logs, [], 'nothing after the last cursor');

  // /job/kill/{jobId}: every running copy of every task of the job; the job (schedule) stays.
  await s.request('POST', '/v1/schedules', { name: 'pair', cron: '0 0 1 1 *', job: { command: 'sleep 30', replicas: 2 } });
  const pairs = [(await keeper<string>('/task/instant/pair')).body, (await keeper<string>('/task/instant/pair')).body];
  const copies = await until('four copies running', async () => {
    const all = (await runs(s, 'pair')).filter((j) => j.status === 'running');
    return all.length === 4 ? all : undefined;
  });
  assert.deepEqual(copies.filter((j) => j.replica === 0).map((j) => j.id).sort(), [...pairs].sort());
  const killed = await keeper<string[]>('/job/kill/pair', { template: '/job/kill/{jobId}' });
  assert.deepEqual(killed.body.sort(), copies.map((j) => j.id).sort());
  for (const j of copies) assert.equal((await s.waitFor(j.id)).status, 'cancelled');
  assert.equal((await s.request('GET', '/v1/schedules/pair')).status, 200, 'the job stays');
  assert.deepEqual((await keeper('/job/kill/pair')).body, []);

  // /action/kill/{actionId}: the id of a running action, 0 for one that does not run.
  const again = await keeper<string>('/task/instant/slow');
  const againRun = (await s.request<Workflow>('GET', `/v1/workflows/${again.body}`)).body;
  const action = step(againRun, 'wait').jobId;
  await s.waitFor(action, (j) => j.status === 'running');
  assert.deepEqual(await keeper(`/action/kill/${step(againRun, 'after').jobId}`, { template: '/action/kill/{actionId}' }), { status: 200, body: 0 });
  assert.deepEqual(await keeper(`/action/kill/${action}`, { template: '/action/kill/{actionId}' }), { status: 200, body: action });
  assert.deepEqual((await settled(s, again.body)).steps.map((x) => x.status), ['cancelled', 'skipped']);
  assert.deepEqual((await keeper(`/action/kill/${action}`)).body, 0);

  // /configurations/reload: 1, nothing to reload.
  assert.deepEqual(await keeper('/configurations/reload', { template: '/configurations/reload' }), { status: 200, body: 1 });

  // Keeper's PQL engine routes: Drover has none; a clear 404 that names it.
  for (const path of ['/connection/setup/12', '/connection/remove/12', '/function/renew?function_name=f', '/function/remove?function_name=f', '/variable/renew?variable_name=v', '/variable/remove?variable_name=v']) {
    const res = await keeper<{ error: { code: string; message: string } }>(path);
    assert.equal(res.status, 404, path);
    assert.equal(res.body.error.code, 'NOT_FOUND');
    assert.match(res.body.error.message, /Keeper's PQL engine .* which Drover does not have/);
  }
  await s.request('POST', `/v1/jobs/${upstream.id}/cancel`);
  await s.waitFor(waiting.body);
});

test('Keeper bad input: a 4xx in Drover\'s envelope that changes nothing; the token by header or ?token=, with the same budget', async (t) => {
  const s = await startStack(t, { runner: false, env: { DROVER_AUTH_FAIL_LIMIT: '3' } });
  const keeper = keeperClient(s);
  await s.request('POST', '/v1/schedules', { name: 'etl', cron: '0 0 1 1 *', workflow: { steps: [{ name: 'a', job: { command: 'true' } }] } });
  const task = (await keeper<string>('/task/instant/etl?delay=60')).body;
  const cases: [string, number, RegExp, string?][] = [
    ['/task/instant/etl?delay=61', 400, /delay: must be <= 60/],
    ['/task/instant/etl?delay=soon', 400, /delay: must be integer/],
    ['/task/instant/etl?ignore=maybe', 400, /ignore/],
    ['/task/instant/etl?dealy=5', 400, /dealy: unknown field/],
    ['/task/instant/ghost', 404, /no job ghost/],
    [`/task/restart/${task}`, 400, /more: is required/],
    [`/task/restart/${task}?more=`, 400, /more/],
    [`/task/restart/${task}?more=01ARZ3NDEKTSV4RRFFQ69G5FAV`, 400, /not an action of task/],
    [`/task/restart/${task}?more=EXCEPTIONAL`, 409, /still running/],
    ['/task/restart/01ARZ3NDEKTSV4RRFFQ69G5FAV?more=WHOLE', 404, /no task/],
    ['/task/kill/not-a-task', 404, /no task/],
    ['/action/kill/01ARZ3NDEKTSV4RRFFQ69G5FAV', 404, /no action/],
    ['/job/kill/ghost', 404, /no job ghost/],
    ['/task/logs', 400, /taskId: is required/, 'GET'],
    [`/task/logs?taskId=${task}&cursor=garbage`, 400, /cursor/, 'GET'],
    [`/task/logs?taskId=${task}&recordTime=yesterday`, 400, /recordTime/, 'GET'],
    [`/task/logs?taskId=${task}&mode=verbose`, 400, /mode/, 'GET'],
    [`/task/logs?taskId=${task}&jobId=other`, 404, /not a run of job other/, 'GET'],
    [`/task/logs?taskId=${task}&actionId=01ARZ3NDEKTSV4RRFFQ69G5FAV`, 404, /no action/, 'GET'],
    ['/global/set?name=LD_PRELOAD&value=/tmp/x.so', 400, /dynamic loader/],
    ['/global/set?name=A', 400, /value: is required/],
  ];
  const runsBefore = (await runs(s, 'etl')).length;
  for (const [path, status, message, method] of cases) {
    const res = await keeper<{ error: { code: string; message: string } }>(path, method ? { method } : {});
    assert.equal(res.status, status, `${path}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error.message, message, path);
    assert.equal(typeof res.body.error.code, 'string');
  }
  assert.equal((await runs(s, 'etl')).length, runsBefore, 'no run was made');
  assert.deepEqual((await s.request('GET', '/v1/variables')).body, { names: [] });
  // GET is for logs only; Keeper's other calls are PUT (another method is no route).
  assert.equal((await fetch(`${s.url}/task/kill/${task}`, { headers: { authorization: `Bearer ${s.tokens.admin}` } })).status, 404);

  // The token: a bearer header or ?token=, read the same way; read scope is too little for a kill.
  const viaHeader = await fetch(`${s.url}/task/kill/${task}`, { method: 'PUT', headers: { authorization: `Bearer ${s.tokens.submit}` } });
  assert.equal(viaHeader.status, 200);
  assert.equal((await keeper(`/task/kill/${task}`, { token: s.tokens.read })).status, 403);
  // Wrong or missing tokens, in the query or not, spend the address's failure budget (3 a minute here) as wrong headers do.
  assert.equal((await keeper(`/task/kill/${task}`, { token: null })).status, 401);
  for (let i = 0; i < 2; i++) assert.equal((await keeper(`/task/kill/${task}`, { token: `wrong-${randomBytes(12).toString('hex')}` })).status, 401);
  assert.equal((await keeper(`/task/kill/${task}`, { token: 'wrong-again-wrong-again' })).status, 429);
  assert.equal((await keeper(`/task/kill/${task}`)).status, 429, 'then the right one is refused too, from this address');
});

test('a token restricted to a queue: another queue\'s jobs, tasks and actions are 404 as missing ones are; its own work as usual', async (t) => {
  const s = await startStack(t, { runner: false });
  const keeper = keeperClient(s);
  const ci = randomBytes(24).toString('base64url');
  s.registry.add(ci, { name: 'ci', scope: 'admin', queues: ['ci'] });
  for (const [name, queue] of [['theirs', 'default'], ['ours', 'ci']]) {
    await s.request('POST', '/v1/schedules', { name, cron: '0 0 1 1 *', workflow: { steps: [{ name: 'a', job: { command: 'false', queue } }] } });
  }
  await s.request('POST', '/v1/schedules', { name: 'plain', cron: '0 0 1 1 *', job: { command: 'true', queue: 'default', env: { SECRET: 'hunter2' } } });
  const theirs = (await keeper<string>('/task/instant/theirs?delay=60')).body;
  const plain = (await keeper<string>('/task/instant/plain?delay=60')).body;
  const action = (await s.request<Workflow>('GET', `/v1/workflows/${theirs}`)).body.steps[0]!.jobId;
  const ghost = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
  const pairs: [string, string, string?][] = [
    ['/task/instant/theirs', '/task/instant/nobody'],
    ['/task/instant/plain', '/task/instant/nobody'],
    ['/job/kill/theirs', '/job/kill/nobody'],
    [`/task/kill/${theirs}`, `/task/kill/${ghost}`],
    [`/kill/task/${plain}`, `/kill/task/${ghost}`],
    [`/task/restart/${theirs}?more=WHOLE`, `/task/restart/${ghost}?more=WHOLE`],
    [`/task/restrat/${plain}?more=WHOLE`, `/task/restrat/${ghost}?more=WHOLE`],
    [`/action/kill/${action}`, `/action/kill/${ghost}`],
    [`/task/logs?taskId=${theirs}`, `/task/logs?taskId=${ghost}`, 'GET'],
  ];
  const mask = (text: string, ids: string[]): string => ids.reduce((x, id) => x.split(id).join('<id>'), text);
  for (const [foreign, missing, method] of pairs) {
    const a = await keeper(foreign, { token: ci, ...(method ? { method } : {}) });
    const b = await keeper(missing, { token: ci, ...(method ? { method } : {}) });
    assert.equal(a.status, 404, `${foreign}: ${JSON.stringify(a.body)}`);
    assert.equal(b.status, 404, missing);
    assert.equal(mask(JSON.stringify(a.body), [theirs, plain, action, 'theirs', 'plain']), mask(JSON.stringify(b.body), [ghost, 'nobody']), `${foreign} is no oracle`);
  }
  assert.equal((await keeper('/global/set?name=A&value=1', { token: ci })).status, 403, 'variables reach every queue');
  // Nothing of theirs changed; the same calls with an unrestricted token do work; its own queue's work does too.
  assert.deepEqual((await s.request<JobRecord>('GET', `/v1/jobs/${action}`)).body.status, 'delayed');
  const own = await keeper<string>('/task/instant/ours?delay=60', { token: ci });
  assert.equal(own.status, 200);
  assert.deepEqual((await keeper(`/task/kill/${own.body}`, { token: ci })).body, []);
  assert.equal((await keeper(`/task/logs?taskId=${own.body}`, { token: ci, method: 'GET' })).status, 200);
  assert.deepEqual((await keeper(`/task/kill/${theirs}`)).body, []);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${action}`)).body.status, 'cancelled');
});

test('what the delay rides on: the native trigger delays a workflow schedule\'s run too; it starts once due, in order', async (t) => {
  const s = await startStack(t);
  await s.request('POST', '/v1/schedules', { name: 'later', cron: '0 0 1 1 *', workflow: { steps: [{ name: 'a', job: { command: 'true' } }, { name: 'b', dependsOn: ['a'], job: { command: 'true' } }] } });
  const before = Date.now();
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/later/trigger', { delayMs: 400 });
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  assert.equal(fired.body.status, 'delayed');
  const wf = await settled(s, fired.body.labels['drover.workflow']!);
  assert.equal(wf.status, 'succeeded');
  const [a, b] = await Promise.all(wf.steps.map(async (x) => (await s.request<JobRecord>('GET', `/v1/jobs/${x.jobId}`)).body));
  assert.ok(Date.parse(a!.startedAt!) >= before + 400, 'not before it was due');
  assert.ok(Date.parse(b!.startedAt!) >= Date.parse(a!.finishedAt!));
  // Env (and args) of a workflow schedule's trigger reach every step (test/schedules.kinds.test.ts); a bad name is refused.
  const refused = await s.request<{ error: { code: string } }>('POST', '/v1/schedules/later/trigger', { env: { 'A-1': '1' } });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, 'VALIDATION');
});
