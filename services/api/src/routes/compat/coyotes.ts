import multipart from '@fastify/multipart';
import {
  DEFAULT_SPEC_DEFAULTS, DroverError, MAX_DURATION_MS, isTerminal, QUEUE_NAME_PATTERN, newJobId, normalizeJobSpec, type JobRecord, type NewJob,
} from '@drover/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { assertQueueAllowed } from '../../auth.js';
import type { ApiContext } from '../../context.js';
import { canSee, guards, type QueueGuard } from '../../queue-scope.js';
import { assertSubmittable, submitJobs } from '../jobs.js';
import { legacyErrors } from './envelope.js';
import {
  COYOTES_CONSUMES, CoyotesChannel, CoyotesChannelInput, CoyotesChannelParams, CoyotesChannels, CoyotesDeleted, CoyotesIdParams, CoyotesOk, CoyotesOneTask, CoyotesPushed,
  CoyotesTaskInput, CoyotesTaskParams, coyotesErrors, documentOnlySchemas,
} from './schemas.js';

const NAME = new RegExp(QUEUE_NAME_PATTERN);
/** Coyotes' channels that always exist. */
const DEFAULT_CHANNELS = ['default', 'biz', 'cron', 'delayed'];
const bad = (message: string): DroverError => new DroverError('VALIDATION', message);
type Fields = Record<string, unknown>;

/** A form field as one string (the last value when repeated), or undefined. */
function field(body: Fields, name: string): string | undefined {
  const v = body[name];
  const last: unknown = Array.isArray(v) ? (v as unknown[])[v.length - 1] : v;
  if (typeof last === 'string') return last;
  return typeof last === 'number' || typeof last === 'boolean' ? String(last) : undefined;
}

/** A form field that may repeat (args=a&args=b, or a JSON array). */
function fields(body: Fields, name: string): string[] {
  const v = body[name] ?? body[`${name}[]`];
  if (v === undefined) return [];
  return (Array.isArray(v) ? (v as unknown[]) : [v]).filter((x) => typeof x === 'string' || typeof x === 'number').map(String);
}

/** Coyotes' task document for a job. */
export function coyotesTask(job: JobRecord): Record<string, unknown> {
  const argv = job.argv ?? ['/bin/sh', '-c', job.command ?? ''];
  return {
    task_id: job.id,
    task_name: job.labels['coyotes.task'] ?? argv.join(' '),
    command: { name: argv[0], args: [...argv.slice(1), ...job.args] },
    channel: job.queue,
    status: job.status === 'running' ? 'running' : 'queued',
    execute_at: job.runAt ?? '',
    retry_count: Math.max(0, job.attempts - 1),
    failed_at: '',
  };
}

/**
 * Coyotes' HTTP API on Drover (seed 004): channels are queues (`worker` = global concurrency, `distinct` = dedupe),
 * tasks are argv jobs run without a shell. Bodies are form fields (urlencoded or multipart) or JSON. Envelope
 * `{status_code, message, data}`; unlike Coyotes, errors carry a 4xx HTTP status as well.
 */
export async function coyotesRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  await app.register(multipart, { attachFieldsToBody: 'keyValues', limits: { files: 0, fields: 1000, fieldSize: 1024 * 1024 } });
  legacyErrors(app, (status, message) => ({ status_code: status, message, data: null }));
  documentOnlySchemas(app);
  const scope = (s: 'read' | 'submit' | 'admin', queues: QueueGuard): { scope: 'read' | 'submit' | 'admin' | null; queues: QueueGuard } => ({ scope: ctx.compatOpen ? null : s, queues });
  const g = guards(ctx);
  const channelGuard = g.queue('name', (r) => new DroverError('NOT_FOUND', `no channel ${(r.params as { name?: string }).name ?? ''}`));
  const delayedGuard = g.job('id', (r) => new DroverError('NOT_FOUND', `no delayed task ${(r.params as { id?: string }).id ?? ''}`));
  const ok = (data: unknown = null) => ({ status_code: 200, message: 'ok', data });
  const channelName = (name: string): string => {
    if (!NAME.test(name)) throw bad('channel name must be 1-64 letters, digits, "_", "." or "-"');
    return name;
  };

  /** Queued and running tasks of a channel (up to 1000 of each state). */
  const channel = async (name: string): Promise<{ tasks: unknown[]; count: number }> => {
    const ids: string[] = [];
    for (const s of ['running', 'queued', 'delayed', 'waiting'] as const) ids.push(...(await ctx.store.redis.zrange(ctx.store.keys.index(name, s), 0, 999)));
    // Read index then records: a job that ended in between is no longer the channel's.
    const tasks = (await ctx.store.getMany(ids)).filter((j) => !isTerminal(j.status)).map(coyotesTask);
    return { tasks, count: tasks.length };
  };

  app.get('/channels', { config: scope('read', 'handler'), schema: { operationId: 'coyotesListChannels', tags: ['compat-coyotes'], summary: 'Channels with their unfinished tasks', response: { 200: CoyotesChannels, ...coyotesErrors } } }, async (request) => {
    const names = [...new Set([...DEFAULT_CHANNELS, ...(await ctx.queues.names())])].filter((n) => canSee(request.principal, [n]));
    const data: Record<string, unknown> = {};
    for (const n of names.sort()) data[n] = await channel(n);
    return ok(data);
  });

  app.post('/channels', {
    config: scope('admin', 'handler'),
    schema: { operationId: 'coyotesCreateChannel', tags: ['compat-coyotes'], summary: 'Create or change a channel (a queue): worker = its concurrency, distinct = dedupe', consumes: COYOTES_CONSUMES, body: CoyotesChannelInput, response: { 200: CoyotesOk, ...coyotesErrors } },
  }, async (request) => {
    const body = (request.body ?? {}) as Fields;
    const name = field(body, 'name');
    if (!name) throw bad('name is required');
    const distinct = field(body, 'distinct') ?? 'false';
    if (!['true', 'false', '1', '0'].includes(distinct)) throw bad('distinct must be true or false');
    const worker = field(body, 'worker');
    if (worker !== undefined && !/^[1-9]\d{0,4}$/.test(worker)) throw bad('worker must be a positive integer');
    assertQueueAllowed(request.principal, channelName(name));
    await ctx.queues.update(channelName(name), { dedupe: distinct === 'true' || distinct === '1', ...(worker ? { concurrency: Number(worker) } : {}) });
    return ok();
  });

  app.get<{ Params: { name: string } }>('/channels/:name', {
    config: scope('read', channelGuard),
    schema: { operationId: 'coyotesGetChannel', tags: ['compat-coyotes'], summary: 'A channel with its unfinished tasks', params: CoyotesChannelParams, response: { 200: CoyotesChannel, ...coyotesErrors } },
  }, async (request) => {
    const name = channelName(request.params.name);
    if (!DEFAULT_CHANNELS.includes(name) && !(await ctx.queues.exists(name))) throw new DroverError('NOT_FOUND', `no channel ${name}`);
    return ok(await channel(name));
  });

  app.delete<{ Params: { name: string } }>('/channels/:name', {
    config: scope('admin', channelGuard),
    schema: { operationId: 'coyotesDeleteChannel', tags: ['compat-coyotes'], summary: 'Delete a channel: its queued tasks are dropped, running ones finish', params: CoyotesChannelParams, response: { 200: CoyotesDeleted, ...coyotesErrors } },
  }, async (request) => {
    const name = channelName(request.params.name);
    if (!(await ctx.queues.exists(name))) throw new DroverError('NOT_FOUND', `no channel ${name}`);
    // Coyotes drops the channel's queued tasks with it; running ones finish.
    const cancelled = await ctx.store.cancelWaiting(name, ['waiting', 'delayed', 'queued']);
    await ctx.queues.update(name, { concurrency: null, rateLimit: null, dedupe: false, paused: false, defaultTimeoutMs: null });
    return ok({ cancelled });
  });

  const pushTask = async (request: FastifyRequest<{ Params: { name: string } }>) => {
    const name = channelName(request.params.name);
    const body = (request.body ?? {}) as Fields;
    const task = field(body, 'task');
    if (!task || task.trim() === '' || task.includes('\u0000')) throw bad('task is required');
    const command = field(body, 'command');
    // Coyotes runs commands without a shell: the task line split on spaces, or `command` with its `args`.
    const argv = command ? [command, ...fields(body, 'args')] : task.trim().split(/\s+/);
    const delay = field(body, 'delay');
    if (delay !== undefined && !/^\d{1,9}$/.test(delay)) throw bad('delay must be whole seconds');
    const delayMs = delay ? Number(delay) * 1000 : 0;
    if (delayMs > Math.min(ctx.maxDelayMs, MAX_DURATION_MS)) throw bad(`delay is more than ${ctx.maxDelayMs / 1000} s`);
    const labels: Record<string, string> = { 'coyotes.task': task.slice(0, 256) };
    const clientId = field(body, 'id');
    if (clientId) labels['coyotes.id'] = clientId.slice(0, 256);
    const spec = normalizeJobSpec({ argv, queue: name, labels }, DEFAULT_SPEC_DEFAULTS);
    assertSubmittable(ctx, request.principal, spec, '');
    const now = Date.now();
    const job: NewJob = { id: newJobId(now), spec };
    if (delayMs > 0) job.runAt = now + delayMs;
    const [created] = await submitJobs(ctx, [job], request.traceContext, request.principal);
    return ok({ task_id: created!.record.id, task_name: task, result: !created!.duplicate });
  };
  app.post<{ Params: { name: string } }>('/channels/:name', {
    config: scope('submit', 'handler'),
    schema: { operationId: 'coyotesPushTask', tags: ['compat-coyotes'], summary: 'Push a task to a channel (run without a shell; delay in seconds)', params: CoyotesChannelParams, consumes: COYOTES_CONSUMES, body: CoyotesTaskInput, response: { 200: CoyotesPushed, ...coyotesErrors } },
  }, (request) => pushTask(request));

  // Failed tasks of a channel (failed, timed out or lost jobs), one of them, and retrying one as a new task.
  const FAILED = ['failed', 'timed_out', 'lost'] as const;
  const failedTask = (job: JobRecord) => ({ ...coyotesTask(job), status: 'failed', failed_at: job.finishedAt ?? '' });
  const mustFail = async (name: string, id: string): Promise<JobRecord> => {
    const job = await ctx.store.get(id);
    if (!job || job.queue !== name || !(FAILED as readonly string[]).includes(job.status)) throw new DroverError('NOT_FOUND', `no failed task ${id} in channel ${name}`);
    return job;
  };
  app.get<{ Params: { name: string } }>('/channels/:name/failed-tasks', {
    config: scope('read', channelGuard),
    schema: { operationId: 'coyotesListFailedTasks', tags: ['compat-coyotes'], summary: 'Failed tasks of a channel (failed, timed out or lost)', params: CoyotesChannelParams, response: { 200: CoyotesChannel, ...coyotesErrors } },
  }, async (request) => {
    const name = channelName(request.params.name);
    const ids: string[] = [];
    for (const s of FAILED) ids.push(...(await ctx.store.redis.zrevrange(ctx.store.keys.index(name, s), 0, 999)));
    const tasks = (await ctx.store.getMany(ids)).map(failedTask);
    return ok({ tasks, count: tasks.length });
  });
  app.get<{ Params: { name: string; id: string } }>('/channels/:name/failed-tasks/:id', {
    config: scope('read', channelGuard),
    schema: { operationId: 'coyotesGetFailedTask', tags: ['compat-coyotes'], summary: 'One failed task', params: CoyotesTaskParams, response: { 200: CoyotesOneTask, ...coyotesErrors } },
  }, async (request) => {
    const name = channelName(request.params.name);
    return ok(failedTask(await mustFail(name, request.params.id)));
  });
  app.post<{ Params: { name: string; id: string } }>('/channels/:name/failed-tasks/:id', {
    config: scope('submit', channelGuard),
    schema: { operationId: 'coyotesRetryFailedTask', tags: ['compat-coyotes'], summary: 'Retry a failed task as a new task', params: CoyotesTaskParams, response: { 200: CoyotesPushed, ...coyotesErrors } },
  }, async (request) => {
    const name = channelName(request.params.name);
    const failed = await mustFail(name, request.params.id);
    const spec = await ctx.store.spec(failed.id);
    if (!spec) throw new DroverError('NOT_FOUND', `no failed task ${failed.id} in channel ${name}`);
    assertSubmittable(ctx, request.principal, spec, '');
    const now = Date.now();
    const [created] = await submitJobs(ctx, [{ id: newJobId(now), spec: { ...spec, labels: { ...spec.labels, 'coyotes.retryOf': failed.id } } }], request.traceContext, request.principal);
    return ok({ task_id: created!.record.id, task_name: coyotesTask(failed).task_name, result: !created!.duplicate });
  });

  // Delayed tasks across channels: list, one, cancel.
  const mustDelay = async (id: string, principal: FastifyRequest['principal']): Promise<JobRecord> => {
    const job = await ctx.store.get(id);
    if (!job || job.status !== 'delayed' || !canSee(principal, [job.queue])) throw new DroverError('NOT_FOUND', `no delayed task ${id}`);
    return job;
  };
  app.get('/delay-tasks', { config: scope('read', 'handler'), schema: { operationId: 'coyotesListDelayedTasks', tags: ['compat-coyotes'], summary: 'Delayed tasks across channels', response: { 200: CoyotesChannel, ...coyotesErrors } } }, async (request) => {
    const ids = await ctx.store.redis.zrange(ctx.store.keys.index(undefined, 'delayed'), 0, 999);
    const jobs = (await ctx.store.getMany(ids)).filter((j) => canSee(request.principal, [j.queue]));
    return ok({ tasks: jobs.map(coyotesTask), count: jobs.length });
  });
  app.get<{ Params: { id: string } }>('/delay-tasks/:id', {
    config: scope('read', delayedGuard),
    schema: { operationId: 'coyotesGetDelayedTask', tags: ['compat-coyotes'], summary: 'One delayed task', params: CoyotesIdParams, response: { 200: CoyotesOneTask, ...coyotesErrors } },
  }, async (request) =>
    ok(coyotesTask(await mustDelay(request.params.id, request.principal))),
  );
  app.delete<{ Params: { id: string } }>('/delay-tasks/:id', {
    config: scope('submit', delayedGuard),
    schema: { operationId: 'coyotesCancelDelayedTask', tags: ['compat-coyotes'], summary: 'Cancel a delayed task', params: CoyotesIdParams, response: { 200: CoyotesOk, ...coyotesErrors } },
  }, async (request) => {
    const job = await mustDelay(request.params.id, request.principal);
    await ctx.store.cancel(job.id);
    return ok();
  });
  app.post<{ Params: { name: string } }>('/channels/:name/tasks', {
    config: scope('submit', 'handler'),
    schema: { operationId: 'coyotesPushTaskToTasks', tags: ['compat-coyotes'], summary: 'Push a task to a channel (the same as POST /channels/{name})', params: CoyotesChannelParams, consumes: COYOTES_CONSUMES, body: CoyotesTaskInput, response: { 200: CoyotesPushed, ...coyotesErrors } },
  }, (request) => pushTask(request));
}
