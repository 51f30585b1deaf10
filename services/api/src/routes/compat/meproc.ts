import {
  DEFAULT_SPEC_DEFAULTS, DroverError, firePayload, isTerminal, newJobId, normalizeJobSpec, timingOf,
  type JobTemplate, type NewJob, type ScheduleDef,
} from '@drover/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../context.js';
import { guards, type QueueGuard } from '../../queue-scope.js';
import { assertJobCount, assertSubmittable, expandReplicas, submitJobs } from '../jobs.js';
import { firstFire, triggerSchedule } from '../schedules.js';
import { legacyErrors } from './envelope.js';
import { bad, parseTask, type TaskInput } from './meproc-parse.js';
import { MeprocTasks, meprocSchedule, type MeprocTask } from './meproc-tasks.js';
import { fromArchive, jobsById, outputOf, type ReadJob } from './read-through.js';
import { MeprocList, MeprocNameQuery, MeprocOk, MeprocOutput, MeprocTaskInput, documentOnlySchemas, meprocErrors } from './schemas.js';
import { untilEnded } from '../../job-actions.js';

const secs = (ms: number): number => Math.floor(ms / 1000);

/**
 * The job template a task runs. Its jobs carry the task's name, which is what other tasks' deps wait for; they wait
 * for every task their deps lead to (Meproc looks at deps transitively).
 */
function template(task: TaskInput, queue: string, waitFor: string[]): JobTemplate {
  const t: JobTemplate = { command: task.cmd, queue, name: task.name, replicas: task.replica };
  if (task.user) t.user = task.user;
  if (task.group) t.group = task.group;
  if (waitFor.length > 0) t.dependsOn = waitFor;
  // Meproc restarts a daemon after a fixed interval: no backoff (restartBackoffMaxMs equal to it).
  if (task.type === 'daemon') Object.assign(t, { type: 'daemon', intervalMs: task.interval, restartBackoffMaxMs: task.interval });
  return t;
}

/**
 * Meproc's HTTP API on Drover (seeds 000/001): POST /proc starts a task (once, daemon or cron; replicas; user and
 * group; deps on other tasks' names), PUT /proc?name= restarts it, DELETE /proc?name= stops it (SIGTERM) and
 * removes it, GET /proc lists running processes and tasks, GET /proc/output?name= the output of each process.
 * Envelope `{code, msg, data}`, code = HTTP status; other paths under /proc answer 404 with an empty body.
 *
 * Deps as Meproc has them: a task whose deps (transitively) run waits until none does, a dep started again while it
 * waits included (recheckNames); a restart is one step for waiters: the new copies wait for the old ones to stop
 * (afterEnd), and the waiters see them before the old ones end.
 */
export function meprocRoutes(app: FastifyInstance, ctx: ApiContext): void {
  legacyErrors(app, (code, msg) => ({ code, msg }));
  documentOnlySchemas(app);
  const tasks = new MeprocTasks(ctx.store.redis, ctx.store.keys.name('meprocTasks'));
  // Every Meproc task lives in DROVER_COMPAT_QUEUE: a token restricted to other queues finds no task at all.
  const tasksGuard = guards(ctx).fixed(ctx.compatQueue, () => new DroverError('FORBIDDEN', 'Program not exists, please start it at first'));
  const scope = (s: 'read' | 'submit', queues: QueueGuard = tasksGuard): { scope: 'read' | 'submit' | null; queues: QueueGuard } => ({ scope: ctx.compatOpen ? null : s, queues });
  const ok = (data?: unknown) => (data === undefined ? { code: 200, msg: 'OK' } : { code: 200, msg: 'OK', data });

  /** Unfinished jobs of the task: its named jobs in Meproc's queue (a name is only unique there) and its latest start's. */
  const unfinishedOf = async (task: MeprocTask): Promise<ReadJob[]> => {
    const named = await ctx.store.unfinishedNamed(task.name);
    const jobs = await ctx.store.getMany([...new Set([...named, ...task.jobIds])]);
    return jobs.filter((j) => j.queue === ctx.compatQueue && j.name === task.name && !isTerminal(j.status));
  };

  /** Starts a once or daemon task's copies, each after the `after` jobs ended (a restart). Returns their ids. */
  const startJobs = async (task: TaskInput, request: FastifyRequest, now: number, after: string[]): Promise<string[]> => {
    const spec = normalizeJobSpec(template(task, ctx.compatQueue, await tasks.closure(task.deps)), DEFAULT_SPEC_DEFAULTS);
    assertSubmittable(ctx, request.principal, spec, '');
    assertJobCount(ctx, task.replica, 'replica');
    const jobs: NewJob[] = expandReplicas({ id: newJobId(now), spec }, now).map((j) => ({ ...j, recheckNames: true, ...(after.length > 0 ? { afterEnd: after } : {}) }));
    return (await submitJobs(ctx, jobs, request.traceContext, request.principal)).map((c) => c.record.id);
  };

  /** A cron task's schedule (made or brought up to date) and a first run at once, as Meproc runs one. Returns its jobs. */
  const startCron = async (task: TaskInput, request: FastifyRequest, now: number): Promise<string[]> => {
    const job = template(task, ctx.compatQueue, await tasks.closure(task.deps));
    assertSubmittable(ctx, request.principal, normalizeJobSpec(job, DEFAULT_SPEC_DEFAULTS), '');
    assertJobCount(ctx, task.replica, 'replica');
    const name = meprocSchedule(task.name);
    // Meproc has no time window: the one set through Drover's API (startAt, endAt, excluded dates, calendar, jitter) stays.
    const timing = timingOf({}, (await ctx.schedules.get(name)) ?? {});
    const def: ScheduleDef = { cron: task.cron!, timezone: 'UTC', job, overlap: 'skip', misfire: 'skip', description: `Meproc cron task ${task.name}`, alertAfterFailures: null, ...timing };
    const next = await firstFire(ctx, def, now);
    if (!(await ctx.schedules.put('create', name, def, true, next, now))) await ctx.schedules.put('update', name, def, true, next, now);
    const payload = firePayload(name, def, now);
    await triggerSchedule(ctx, name, payload, null, now);
    return payload.jobIds;
  };
  const start = (task: TaskInput, request: FastifyRequest, now: number, after: string[] = []): Promise<string[]> =>
    task.type === 'cron' ? startCron(task, request, now) : startJobs(task, request, now, after);

  /**
   * Stops jobs (SIGTERM to running ones, through their runners) and waits until they ended, as Meproc answers once it
   * killed the processes; bounded by the kill grace, after which the answer goes and the runners finish the job.
   */
  const stopJobs = async (ids: string[]): Promise<void> => {
    if (ids.length === 0) return;
    await ctx.store.cancelMany(ids);
    await untilEnded(ctx, ids);
  };

  const nameParam = (query: unknown): string => {
    const name = (query as { name?: unknown } | undefined)?.name;
    if (typeof name !== 'string' || name === '') throw bad('name is required');
    return name;
  };
  const mustGet = async (name: string): Promise<MeprocTask> => {
    const task = await tasks.get(name);
    if (!task) throw new DroverError('FORBIDDEN', 'Program not exists, please start it at first');
    return task;
  };

  app.post('/proc', {
    config: scope('submit'),
    schema: { operationId: 'meprocStart', tags: ['compat-meproc'], summary: 'Start a task (once, daemon or cron; replicas; user and group; deps)', body: MeprocTaskInput, response: { 200: MeprocOk, ...meprocErrors } },
  }, async (request) => {
    const input = parseTask(request.body);
    const cycle = await tasks.cycle(input.name, input.deps);
    if (cycle) throw bad(`Invalid JSON field: deps form a cycle: ${cycle.join(' -> ')}`);
    const now = Date.now();
    const task: MeprocTask = { ...input, start_time: secs(now), last_time: 0, jobIds: [], createdAt: now };
    if (!(await tasks.add(task))) throw new DroverError('FORBIDDEN', 'Program exists, please stop it at first');
    try {
      task.jobIds = await start(input, request, now);
    } catch (err) {
      await tasks.remove(task.name);
      throw err;
    }
    await tasks.save(task);
    return ok();
  });

  app.put('/proc', {
    config: scope('submit'),
    schema: { operationId: 'meprocRestart', tags: ['compat-meproc'], summary: 'Restart a task: its copies are stopped (SIGTERM) and started again; tasks waiting for it go on waiting', querystring: MeprocNameQuery, response: { 200: MeprocOk, ...meprocErrors } },
  }, async (request) => {
    const task = await mustGet(nameParam(request.query));
    const old = (await unfinishedOf(task)).map((j) => j.id);
    const now = Date.now();
    // The new copies exist (waiting for the old ones to stop) before the old ones end: no waiter sees the task gone.
    const fresh = await start(task, request, now, old);
    await stopJobs(old.filter((id) => !fresh.includes(id)));
    task.jobIds = fresh;
    task.start_time = secs(now);
    await tasks.save(task);
    return ok();
  });

  app.delete('/proc', {
    config: scope('submit'),
    schema: { operationId: 'meprocStop', tags: ['compat-meproc'], summary: 'Stop a task (SIGTERM to its running copies) and remove it', querystring: MeprocNameQuery, response: { 200: MeprocOk, ...meprocErrors } },
  }, async (request) => {
    const task = await mustGet(nameParam(request.query));
    const flagged = task.type === 'cron' ? ((await ctx.schedules.delete(meprocSchedule(task.name), true))?.flagged ?? []) : [];
    await ctx.store.signalCancel(flagged);
    await stopJobs([...new Set([...flagged, ...(await unfinishedOf(task)).map((j) => j.id)])]);
    await tasks.remove(task.name);
    return ok();
  });

  /** When the task's processes last started, epoch seconds: the newest start among its jobs, kept past their records. */
  const lastTime = async (task: MeprocTask, known: number, live: ReadJob[]): Promise<number> => {
    const others = task.jobIds.filter((id) => !live.some((j) => j.id === id));
    // The archive only for a start not seen yet: once seen, the kept time covers the records Redis let go.
    const seen = known > 0 && known >= task.start_time;
    const jobs = [...live, ...(seen ? await ctx.store.getMany(others) : await jobsById(ctx, others))];
    let newest = Math.max(0, ...jobs.filter((j) => j.startedAt).map((j) => secs(Date.parse(j.startedAt!))));
    if (task.type === 'cron') {
      const fired = (await ctx.schedules.get(meprocSchedule(task.name)))?.lastRunAt;
      if (fired) newest = Math.max(newest, secs(Date.parse(fired)));
    }
    if (newest > known) await tasks.startedAt(task.name, newest);
    return Math.max(known, newest);
  };

  app.get('/proc', {
    config: scope('read'),
    schema: { operationId: 'meprocList', tags: ['compat-meproc'], summary: 'Running processes and registered tasks', response: { 200: MeprocList, ...meprocErrors } },
  }, async () => {
    const [all, starts] = await Promise.all([tasks.all(), tasks.lastStarts()]);
    const running: { command: string; pid: number; alias: string }[] = [];
    const view: Record<string, unknown> = {};
    for (const task of all) {
      const live = await unfinishedOf(task);
      const procs = live.filter((j) => j.status === 'running').sort((a, b) => a.replica - b.replica);
      for (const j of procs) running.push({ command: task.cmd, pid: j.pid ?? 0, alias: `${task.name}:${j.replica}` });
      view[task.name] = {
        name: task.name, cmd: task.cmd, type: task.type, replica: task.replica, user: task.user, group: task.group, deps: task.deps, interval: task.interval,
        ...(task.cron ? { cron: task.cron } : {}),
        start_time: task.start_time,
        last_time: await lastTime(task, Math.max(starts.get(task.name) ?? 0, task.last_time ?? 0), live),
        // Meproc's run_flag: the task is to start once its deps stop running.
        run_flag: live.some((j) => j.status === 'waiting'),
        running: procs.length,
      };
    }
    return ok({ running, tasks: view });
  });

  /** The jobs of the task's latest start, one per replica: a cron task's latest run, else its latest PUT or POST. */
  const latestStart = async (task: MeprocTask): Promise<ReadJob[]> => {
    if (task.type === 'cron') {
      const name = meprocSchedule(task.name);
      const run = await jobsById(ctx, (await ctx.schedules.runs(name, undefined, task.replica)).ids);
      if (run.length > 0) return run;
      const archived = ctx.archive ? await ctx.archive.list({ schedule: name }, undefined, task.replica) : [];
      if (archived.length > 0) return archived.map(fromArchive);
    }
    return jobsById(ctx, task.jobIds);
  };

  const output = async (request: FastifyRequest) => {
    const task = await mustGet(nameParam(request.query));
    const jobs = await latestStart(task);
    // Every process of the task has its entry, as in Meproc: empty when it has written nothing (or not started).
    const data: Record<string, string> = {};
    for (let i = 0; i < task.replica; i++) data[`${task.name}:${i}`] = '';
    for (const job of jobs) {
      const lines = await outputOf(ctx, job, 10_000);
      data[`${task.name}:${job.replica}`] = Buffer.from(lines.map((l) => `${l.line}\n`).join('')).toString('base64');
    }
    return ok(data);
  };
  app.get('/proc/output', {
    config: scope('read'),
    schema: { operationId: 'meprocOutput', tags: ['compat-meproc'], summary: "The output of a task's latest start, per process, base64", querystring: MeprocNameQuery, response: { 200: MeprocOutput, ...meprocErrors } },
  }, output);
  // Meproc answers /proc/output whatever the method.
  app.route({ method: ['POST', 'PUT', 'DELETE', 'PATCH'], url: '/proc/output', config: scope('read'), schema: { hide: true }, handler: output });

  app.route({
    method: ['PATCH', 'OPTIONS'],
    url: '/proc',
    config: { scope: null, queues: 'none' },
    schema: { hide: true },
    handler: async (_request, reply) => reply.status(405).send({ code: 405, msg: 'Method not allowed' }),
  });
  // Any other path under /proc is 404 with an empty body, as Meproc answers it (after the token check, as Drover's own 404s).
  app.all('/proc/*', { config: scope('read', 'none'), schema: { hide: true } }, async (_request, reply: FastifyReply) => reply.status(404).send());
}
