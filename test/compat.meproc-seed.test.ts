import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

/**
 * Meproc's README example (seed 001), replayed request by request through HTTP as `curl -d` sends it (JSON in a form
 * body), and the order of its log checked on the job records' start and end times.
 *
 * The seed's log (Meproc 1.0.6, 2023-11-16) shows a single sleep1 start and no "Task sleep1 stopped": that run's
 * DELETE, second POST and PUT changed nothing. The same README's log of this sequence before (2023-11-01, Meproc's
 * git history) shows what they do: "Task sleep1 stopped" / "Task sleep2 started" (the DELETE frees sleep2) / "Task
 * sleep1 started" / "Task sleep1 stopped" / "Task sleep1 started" (PUT: stop, then start) / sleep2 and sleep1 exit /
 * "Task sleep3 started". Both logs agree on what is checked here: sleep2 starts only once the sleep1 it waited for
 * stopped, sleep3 only once no sleep1 or sleep2 runs, sleep4 at once and then on the minute.
 */

interface ProcList {
  code: number;
  msg: string;
  data: { running: { command: string; pid: number; alias: string }[]; tasks: Record<string, Record<string, unknown>> };
}

async function curl(s: Stack, method: string, path: string, json?: unknown): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { authorization: `Bearer ${s.tokens.admin}` };
  if (json !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : '' };
}

async function jobsNamed(s: Stack, name: string): Promise<JobRecord[]> {
  const all = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?limit=1000')).body.items;
  return all.filter((j) => j.name === name).sort((a, b) => a.id.localeCompare(b.id));
}

const started = (j: JobRecord): number => Date.parse(j.startedAt!);
const finished = (j: JobRecord): number => Date.parse(j.finishedAt!);
const firstStart = (jobs: JobRecord[]): number => Math.min(...jobs.map(started));
const lastEnd = (jobs: JobRecord[]): number => Math.max(...jobs.map(finished));
const OK = { status: 200, body: { code: 200, msg: 'OK' } };

test("Meproc's README sequence (seed 001): answers, then the log's order on the job records", async (t) => {
  // As `drover start` runs it: one runner serving every queue, room for all the processes of the example.
  const s = await startStack(t, { env: { RUNNER_CONCURRENCY: '10', RUNNER_QUEUES: '*' } });

  // curl -v -XPOST http://127.1:8606/proc -d '{"name": "sleep1", "cmd": "sleep 5", "type": "once", "replica": 2}'
  assert.deepEqual(await curl(s, 'POST', '/proc', { name: 'sleep1', cmd: 'sleep 5', type: 'once', replica: 2 }), OK);
  assert.deepEqual(await curl(s, 'POST', '/proc', { name: 'sleep2', cmd: 'sleep 5', type: 'once', replica: 2, deps: ['sleep1'] }), OK);
  assert.deepEqual(await curl(s, 'POST', '/proc', { name: 'sleep3', cmd: 'sleep 5', type: 'once', replica: 2, deps: ['sleep1', 'sleep2'] }), OK);

  // curl -v http://127.1:8606/proc (Meproc starts processes before it answers the POST; here runners take a moment)
  const list = await until('sleep1:0 and sleep1:1 running', async () => {
    const res = (await curl(s, 'GET', '/proc')).body as ProcList;
    return res.data.running.length === 2 && res.data.running.every((r) => r.pid > 0) ? res : undefined;
  });
  assert.deepEqual([list.code, list.msg], [200, 'OK']);
  assert.deepEqual(list.data.running.map((r) => [r.command, r.alias]), [['sleep 5', 'sleep1:0'], ['sleep 5', 'sleep1:1']]);
  assert.deepEqual(Object.keys(list.data.tasks), ['sleep1', 'sleep2', 'sleep3']);
  const meprocKeys = ['cmd', 'deps', 'group', 'interval', 'last_time', 'name', 'replica', 'run_flag', 'running', 'start_time', 'type', 'user'];
  for (const view of Object.values(list.data.tasks)) assert.deepEqual(Object.keys(view).sort(), meprocKeys, 'the fields of seed 000\'s task view');
  const [t1, t2, t3] = [list.data.tasks.sleep1!, list.data.tasks.sleep2!, list.data.tasks.sleep3!];
  assert.deepEqual([t1.run_flag, t1.running], [false, 2]);
  assert.ok((t1.last_time as number) >= (t1.start_time as number) && (t1.last_time as number) > 0);
  assert.deepEqual([t2.run_flag, t2.running, t2.last_time], [true, 0, 0], 'sleep2 waits and has not started');
  assert.deepEqual([t3.run_flag, t3.running, t3.deps], [true, 0, ['sleep1', 'sleep2']]);

  // curl -v -XDELETE http://127.1:8606/proc?name=sleep1 : answered once its processes are stopped, as Meproc does.
  assert.deepEqual(await curl(s, 'DELETE', '/proc?name=sleep1'), OK);
  const gen1 = await jobsNamed(s, 'sleep1');
  assert.deepEqual(gen1.map((j) => j.status), ['cancelled', 'cancelled']);
  // curl -v -XPOST ... sleep1 again, then curl -v -XPUT http://127.1:8606/proc?name=sleep1
  assert.deepEqual(await curl(s, 'POST', '/proc', { name: 'sleep1', cmd: 'sleep 5', type: 'once', replica: 2 }), OK);
  assert.deepEqual(await curl(s, 'PUT', '/proc?name=sleep1'), OK);
  // curl -v -XPOST ... '{"name": "sleep4", "cmd": "sleep 5", "type": "cron", "cron": "* * * * *", "replica": 2}'
  const sleep4Posted = Date.now();
  assert.deepEqual(await curl(s, 'POST', '/proc', { name: 'sleep4', cmd: 'sleep 5', type: 'cron', cron: '* * * * *', replica: 2 }), OK);

  const sleep3 = await until('sleep3 ran', async () => {
    const jobs = await jobsNamed(s, 'sleep3');
    return jobs.length === 2 && jobs.every((j) => j.status === 'succeeded') ? jobs : undefined;
  }, 40_000);
  const sleep1 = await jobsNamed(s, 'sleep1');
  const sleep2 = await jobsNamed(s, 'sleep2');
  assert.equal(sleep1.length, 6, 'three starts of sleep1: POST, POST after DELETE, PUT');
  const [gen2, gen3] = [sleep1.slice(2, 4), sleep1.slice(4, 6)];
  assert.deepEqual(gen2.map((j) => j.status), ['cancelled', 'cancelled'], 'PUT stopped the copies of the second POST');
  assert.deepEqual(gen3.map((j) => j.status), ['succeeded', 'succeeded']);
  for (const gen of [gen1, gen3, sleep2, sleep3]) assert.deepEqual(gen.map((j) => j.replica), [0, 1]);

  // The log's order. sleep2 started only once the sleep1 it waited for stopped.
  assert.ok(firstStart(sleep2) >= lastEnd(gen1), 'Task sleep2 started after sleep1 stopped');
  // Restart is stop, then start: the new copies start once the old ones stopped.
  assert.ok(firstStart(gen3) >= lastEnd(gen2), 'PUT: Task sleep1 stopped, then Task sleep1 started');
  // sleep3 waits while any of its deps runs: it started after sleep2 and after every sleep1, the restarted one too.
  assert.ok(firstStart(sleep3) >= lastEnd(sleep2), 'Task sleep3 started after sleep2 stopped');
  assert.ok(firstStart(sleep3) >= lastEnd(sleep1), 'and after the restarted sleep1 stopped');
  // Freed by the DELETE, sleep2 ran beside the sleep1 started again (the 2023-11-01 log: both exit in the same second).
  assert.ok(firstStart(sleep2) < lastEnd(gen3), 'sleep2 did not wait for a sleep1 started after it was freed');

  // sleep4 started at once (both processes), and fires again on every minute, never over a run of its own.
  const sleep4 = (await jobsNamed(s, 'sleep4')).slice(0, 2);
  assert.deepEqual(sleep4.map((j) => j.replica), [0, 1]);
  const schedule = (await s.request<{ cron: string; nextRunAt: string; overlap: string }>('GET', '/v1/schedules/meproc.sleep4')).body;
  for (const j of sleep4) assert.ok(started(j) < Date.parse(schedule.nextRunAt) && started(j) >= sleep4Posted, 'Task sleep4 started at its POST');
  assert.equal(new Date(schedule.nextRunAt).getUTCSeconds(), 0, 'then every minute on the minute');
  assert.deepEqual([schedule.cron, schedule.overlap], ['* * * * *', 'skip']);

  for (const name of ['sleep1', 'sleep2', 'sleep3', 'sleep4']) assert.deepEqual(await curl(s, 'DELETE', `/proc?name=${name}`), OK);
  assert.deepEqual(((await curl(s, 'GET', '/proc')).body as ProcList).data, { running: [], tasks: {} });
});
