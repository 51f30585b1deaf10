import {
  DEFAULT_SPEC_DEFAULTS, DroverError, MAX_REPLICAS, firePayload, QUEUE_NAME_PATTERN, newJobId, nextFireAfter, normalizeJobSpec, validateCron,
  type JobTemplate, type ScheduleDef,
} from '@drover/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../context.js';
import { guards, type QueueGuard } from '../../queue-scope.js';
import { assertJobCount, assertSubmittable, expandReplicas, submitJobs } from '../jobs.js';
import { triggerSchedule } from '../schedules.js';
import { legacyErrors } from './envelope.js';
import { MeprocTasks, meprocSchedule, type MeprocTask } from './meproc-tasks.js';
import { MeprocList, MeprocNameQuery, MeprocOk, MeprocOutput, MeprocTaskInput, documentOnlySchemas, meprocErrors } from './schemas.js';

type TaskInput = Omit<MeprocTask, 'start_time' | 'last_time' | 'jobIds'>;

const NAME = new RegExp(QUEUE_NAME_PATTERN);
const IDENTITY = /^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$/;
const bad = (message: string): DroverError => new DroverError('VALIDATION', message);

/** Meproc's POST /proc body, checked field by field with Meproc's own messages where it has them. */
export function parseTask(body: unknown): TaskInput {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length === 0) {
    throw bad('JSON body is required');
  }
  const b = body as Record<string, unknown>;
  const missing = ['name', 'cmd', 'type', 'replica'].filter((f) => b[f] === undefined);
  if (missing.length > 0) throw bad(`Invalid JSON field: ${missing.join(', ')} required`);
  if (typeof b.name !== 'string' || !NAME.test(b.name) || b.name === '__coroutine__') {
    throw bad('Invalid JSON field: name must be 1-64 letters, digits, "_", "." or "-"');
  }
  if (typeof b.cmd !== 'string' || b.cmd.trim() === '' || b.cmd.includes('\u0000')) throw bad('Invalid JSON field: cmd must be a non-empty command');
  if (b.type === 'coroutine') throw bad('Invalid JSON field: type "coroutine" runs Melang coroutines, which Drover does not have');
  if (b.type !== 'once' && b.type !== 'daemon' && b.type !== 'cron') throw bad('Invalid JSON field: type must be once, daemon or cron');
  const positive = (field: string, max: number): number | undefined => {
    const v = b[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw bad(`Invalid JSON field: ${field} must be a positive integer up to ${max}`);
    return v;
  };
  const replica = positive('replica', MAX_REPLICAS)!;
  const interval = positive('interval', 30 * 86_400_000) ?? 3000;
  if (b.cron !== undefined && b.type !== 'cron') throw bad("Type of cron job must be 'cron'");
  let cron: string | null = null;
  if (b.type === 'cron') {
    if (b.cron !== undefined && typeof b.cron !== 'string') throw bad('Invalid cron format: must be a string');
    cron = b.cron ?? '* * * * *';
    try {
      validateCron(cron, 'UTC');
    } catch (err) {
      throw bad(`Invalid cron format: ${(err as Error).message}`);
    }
  }
  for (const f of ['user', 'group'] as const) {
    if (b[f] !== undefined && b[f] !== null && (typeof b[f] !== 'string' || !IDENTITY.test(b[f]))) throw bad(`Invalid JSON field: ${f} must be a user/group name or id`);
  }
  const deps = b.deps ?? [];
  if (!Array.isArray(deps) || deps.some((d) => typeof d !== 'string' || !NAME.test(d)) || deps.length > 64) {
    throw bad('Invalid JSON field: deps must be a list of task names');
  }
  return {
    name: b.name,
    cmd: b.cmd,
    type: b.type,
    replica,
    user: (b.user as string | undefined) ?? null,
    group: (b.group as string | undefined) ?? null,
    deps: [...new Set(deps as string[])],
    interval,
    cron,
  };
}

/** The job template a task runs: its jobs carry the task's name, which is what other tasks' deps wait for. */
function template(task: TaskInput, queue: string): JobTemplate {
  const t: JobTemplate = { command: task.cmd, queue, name: task.name, replicas: task.replica };
  if (task.user) t.user = task.user;
  if (task.group) t.group = task.group;
  if (task.deps.length > 0) t.dependsOn = task.deps;
  // Meproc restarts a daemon after a fixed interval: no backoff (restartBackoffMaxMs equal to it).
  if (task.type === 'daemon') Object.assign(t, { type: 'daemon', intervalMs: task.interval, restartBackoffMaxMs: task.interval });
  return t;
}

/**
 * Meproc's HTTP API on Drover (seed 000/001): POST /proc starts a task (once, daemon or cron; replicas; user and
 * group; deps on other tasks' names), PUT /proc?name= restarts it, DELETE /proc?name= stops it (SIGTERM) and
 * removes it, GET /proc lists running processes and tasks. Envelope `{code, msg, data}`, code = HTTP status.
 */
export function meprocRoutes(app: FastifyInstance, ctx: ApiContext): void {
  legacyErrors(app, (code, msg) => ({ code, msg }));
  documentOnlySchemas(app);
  const tasks = new MeprocTasks(ctx.store.redis, `${ctx.store.keys.base}:compat:meproc`);
  // Every Meproc task lives in DROVER_COMPAT_QUEUE: a token restricted to other queues finds no task at all.
  const tasksGuard = guards(ctx).fixed(ctx.compatQueue, () => new DroverError('FORBIDDEN', 'Program not exists, please start it at first'));
  const scope = (s: 'read' | 'submit'): { scope: 'read' | 'submit' | null; queues: QueueGuard } => ({ scope: ctx.compatOpen ? null : s, queues: tasksGuard });
  const ok = (data?: unknown) => (data === undefined ? { code: 200, msg: 'OK' } : { code: 200, msg: 'OK', data });

  /** Starts the task's jobs (or its schedule plus a first run at once, as Meproc does). Returns the new job ids. */
  const start = async (task: TaskInput, request: FastifyRequest, now: number): Promise<string[]> => {
    const spec = normalizeJobSpec(template(task, ctx.compatQueue), DEFAULT_SPEC_DEFAULTS);
    assertSubmittable(ctx, request.principal, spec, '');
    assertJobCount(ctx, task.replica, 'replica');
    if (task.type !== 'cron') return (await submitJobs(ctx, expandReplicas({ id: newJobId(now), spec }, now), request.traceContext, request.principal)).map((c) => c.record.id);
    const name = meprocSchedule(task.name);
    const def: ScheduleDef = {
      cron: task.cron!, timezone: 'UTC', job: template(task, ctx.compatQueue), overlap: 'skip', misfire: 'skip', description: `Meproc cron task ${task.name}`, alertAfterFailures: null,
    };
    const next = nextFireAfter(def.cron, def.timezone, now);
    if (!(await ctx.schedules.put('create', name, def, true, next, now))) await ctx.schedules.put('update', name, def, true, next, now);
    const payload = firePayload(name, def, now);
    await triggerSchedule(ctx, name, payload, null, now);
    return payload.jobIds;
  };

  /** Stops every unfinished job of the task (SIGTERM to running ones) and its schedule. */
  const stop = async (task: MeprocTask): Promise<void> => {
    const flagged = task.type === 'cron' ? ((await ctx.schedules.delete(meprocSchedule(task.name), true))?.flagged ?? []) : [];
    await ctx.store.signalCancel(flagged);
    // Jobs of the same name in other queues are not the task's (a name is only unique within Meproc's queue).
    const unfinished = await ctx.store.getMany(await ctx.store.redis.smembers(`${ctx.store.keys.base}:named:${task.name}`));
    await ctx.store.cancelMany([...new Set([...unfinished.filter((j) => j.queue === ctx.compatQueue).map((j) => j.id), ...task.jobIds])]);
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
    const secs = Math.floor(now / 1000);
    const task: MeprocTask = { ...input, start_time: secs, last_time: secs, jobIds: [] };
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
    schema: { operationId: 'meprocRestart', tags: ['compat-meproc'], summary: 'Restart a task: its running copies are stopped (SIGTERM) and started again', querystring: MeprocNameQuery, response: { 200: MeprocOk, ...meprocErrors } },
  }, async (request) => {
    const task = await mustGet(nameParam(request.query));
    await stop(task);
    const now = Date.now();
    task.jobIds = await start(task, request, now);
    task.last_time = Math.floor(now / 1000);
    await tasks.save(task);
    return ok();
  });

  app.delete('/proc', {
    config: scope('submit'),
    schema: { operationId: 'meprocStop', tags: ['compat-meproc'], summary: 'Stop a task (SIGTERM to its running copies) and remove it', querystring: MeprocNameQuery, response: { 200: MeprocOk, ...meprocErrors } },
  }, async (request) => {
    const task = await mustGet(nameParam(request.query));
    await stop(task);
    await tasks.remove(task.name);
    return ok();
  });

  app.get('/proc', {
    config: scope('read'),
    schema: { operationId: 'meprocList', tags: ['compat-meproc'], summary: 'Running processes and registered tasks', response: { 200: MeprocList, ...meprocErrors } },
  }, async () => {
    const all = await tasks.all();
    const running: { command: string; pid: number; alias: string }[] = [];
    const view: Record<string, unknown> = {};
    for (const task of all) {
      const named = (await ctx.store.getMany(await ctx.store.redis.smembers(`${ctx.store.keys.base}:named:${task.name}`))).filter((j) => j.queue === ctx.compatQueue);
      const ids = named.map((j) => j.id);
      const jobs = named.filter((j) => j.status === 'running').sort((a, b) => a.replica - b.replica);
      for (const j of jobs) running.push({ command: task.cmd, pid: j.pid ?? 0, alias: `${task.name}:${j.replica}` });
      const { jobIds, cron, ...shown } = task;
      void jobIds; // internal: not part of Meproc's task view
      view[task.name] = { ...shown, ...(cron ? { cron } : {}), run_flag: ids.length > 0 || task.type !== 'once', running: jobs.length };
    }
    return ok({ running, tasks: view });
  });

  app.get('/proc/output', {
    config: scope('read'),
    schema: { operationId: 'meprocOutput', tags: ['compat-meproc'], summary: "The output of a task's latest start, per copy, base64", querystring: MeprocNameQuery, response: { 200: MeprocOutput, ...meprocErrors } },
  }, async (request) => {
    const task = await mustGet(nameParam(request.query));
    const data: Record<string, string> = {};
    for (const job of await ctx.store.getMany(task.jobIds)) {
      const page = await ctx.logs.read(job.id, undefined, 10_000);
      data[`${task.name}:${job.replica}`] = Buffer.from(page.items.map((l) => `${l.line}\n`).join('')).toString('base64');
    }
    return ok(data);
  });

  app.route({
    method: ['PATCH', 'OPTIONS'],
    url: '/proc',
    config: { scope: null, queues: 'none' },
    schema: { hide: true },
    handler: async (_request, reply) => reply.status(405).send({ code: 405, msg: 'Method Not Allowed' }),
  });
}
