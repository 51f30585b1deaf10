import multipart from '@fastify/multipart';
import {
  DEFAULT_SPEC_DEFAULTS, DroverError, MAX_DURATION_MS, isTerminal, QUEUE_NAME_PATTERN, newJobId, normalizeJobSpec, type JobSpec, type NewJob,
} from '@drover/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { assertQueueAllowed } from '../../auth.js';
import type { ApiContext } from '../../context.js';
import { announcerFor } from '../../queue-consumers.js';
import { canSee, guards, type QueueGuard } from '../../queue-scope.js';
import { assertSubmittable, submitJobs } from '../jobs.js';
import { CoyotesTasks, TASK_ID, TASK_ID_LABEL, byTaskId, coyotesTask, taskIdOf } from './coyotes-tasks.js';
import { legacyErrors } from './envelope.js';
import type { ReadJob } from './read-through.js';
import {
  COYOTES_CONSUMES, CoyotesChannel, CoyotesChannelInput, CoyotesChannelParams, CoyotesChannels, CoyotesDeleted, CoyotesIdParams, CoyotesOk, CoyotesOneTask, CoyotesPushed,
  CoyotesTaskInput, CoyotesTaskMap, CoyotesTaskParams, coyotesErrors, documentOnlySchemas,
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

/**
 * Coyotes' HTTP API on Drover (seed 004): channels are queues (`worker` = how many of its tasks run at once, `distinct`
 * = dedupe), tasks are argv jobs run without a shell, a task's id is the client's `id` when it gave one. Bodies are
 * form fields (urlencoded or multipart) or JSON. Envelope `{status_code, message, data}`; unlike Coyotes, errors carry
 * a 4xx HTTP status as well.
 */
export async function coyotesRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  await app.register(multipart, { attachFieldsToBody: 'keyValues', limits: { files: 0, fields: 1000, fieldSize: 1024 * 1024 } });
  legacyErrors(app, (status, message) => ({ status_code: status, message, data: null }));
  documentOnlySchemas(app);
  const tasks = new CoyotesTasks(ctx);
  const scope = (s: 'read' | 'submit' | 'admin', queues: QueueGuard): { scope: 'read' | 'submit' | 'admin' | null; queues: QueueGuard } => ({ scope: ctx.compatOpen ? null : s, queues });
  const channelGuard = guards(ctx).queue('name', (r) => new DroverError('NOT_FOUND', `no channel ${(r.params as { name?: string }).name ?? ''}`));
  // A delayed task by its task id (a client's id or a job id): its queue is the job's it names.
  const delayedId = (r: FastifyRequest): string => (r.params as { id?: string }).id ?? '';
  const delayedGuard: QueueGuard = {
    queuesOf: async (r) => {
      const job = await tasks.delayedOne(delayedId(r), (q) => canSee(r.principal, [q]));
      return job ? [job.queue] : null;
    },
    missing: (r) => new DroverError('NOT_FOUND', `no delayed task ${delayedId(r)}`),
  };
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
    const list = (await ctx.store.getMany(ids)).filter((j) => !isTerminal(j.status)).map(coyotesTask);
    return { tasks: list, count: list.length };
  };

  app.get('/channels', { config: scope('read', 'handler'), schema: { operationId: 'coyotesListChannels', tags: ['compat-coyotes'], summary: 'Channels with their unfinished tasks', response: { 200: CoyotesChannels, ...coyotesErrors } } }, async (request) => {
    const names = [...new Set([...DEFAULT_CHANNELS, ...(await ctx.queues.names())])].filter((n) => canSee(request.principal, [n]));
    const data: Record<string, unknown> = {};
    for (const n of names.sort()) data[n] = await channel(n);
    return ok(data);
  });

  app.post('/channels', {
    config: scope('admin', 'handler'),
    schema: { operationId: 'coyotesCreateChannel', tags: ['compat-coyotes'], summary: 'Create or change a channel (a queue): worker = how many of its tasks run at once, distinct = dedupe', consumes: COYOTES_CONSUMES, body: CoyotesChannelInput, response: { 200: CoyotesOk, ...coyotesErrors } },
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
    // Runners that serve every queue (RUNNER_QUEUES=*, as `drover start` runs) take the channel on now, not on their next scan.
    announcerFor(ctx.control, ctx.store.keys.control, ctx.log).announce([name]);
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

  /** Submits a task's job; answers Coyotes' push result (task_id: the client's id, else the job's; result false: a duplicate). */
  const submitTask = async (request: FastifyRequest, spec: JobSpec, runAt: number | undefined, taskName: string, taskId: string | undefined) => {
    assertSubmittable(ctx, request.principal, spec, '');
    const now = Date.now();
    const job: NewJob = { id: newJobId(now), spec };
    if (runAt !== undefined) job.runAt = runAt;
    const [created] = await submitJobs(ctx, [job], request.traceContext, request.principal);
    return { task_id: taskId ?? taskIdOf(created!.record), task_name: taskName, result: !created!.duplicate };
  };

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
    const clientId = field(body, 'id');
    if (clientId !== undefined && clientId !== '' && !TASK_ID.test(clientId)) throw bad('id must be 1-128 letters, digits, "_", ".", ":", "@" or "-", starting with a letter or digit');
    const labels: Record<string, string> = { 'coyotes.task': task.slice(0, 256) };
    if (clientId) labels[TASK_ID_LABEL] = clientId;
    const spec = normalizeJobSpec({ argv, queue: name, labels }, DEFAULT_SPEC_DEFAULTS);
    return ok(await submitTask(request, spec, delayMs > 0 ? Date.now() + delayMs : undefined, task, clientId || undefined));
  };
  app.post<{ Params: { name: string } }>('/channels/:name', {
    config: scope('submit', 'handler'),
    schema: { operationId: 'coyotesPushTask', tags: ['compat-coyotes'], summary: 'Push a task to a channel (run without a shell; delay in seconds)', params: CoyotesChannelParams, consumes: COYOTES_CONSUMES, body: CoyotesTaskInput, response: { 200: CoyotesPushed, ...coyotesErrors } },
  }, (request) => pushTask(request));
  app.post<{ Params: { name: string } }>('/channels/:name/tasks', {
    config: scope('submit', 'handler'),
    schema: { operationId: 'coyotesPushTaskToTasks', tags: ['compat-coyotes'], summary: 'Push a task to a channel (the same as POST /channels/{name})', params: CoyotesChannelParams, consumes: COYOTES_CONSUMES, body: CoyotesTaskInput, response: { 200: CoyotesPushed, ...coyotesErrors } },
  }, (request) => pushTask(request));

  // Failed tasks of a channel (failed, timed out or lost jobs, archived ones too): list, one, retry, delete.
  const mustFail = async (name: string, id: string): Promise<ReadJob> => {
    const job = await tasks.failedOne(name, id);
    if (!job) throw new DroverError('NOT_FOUND', `no failed task ${id} in channel ${name}`);
    return job;
  };
  app.get<{ Params: { name: string } }>('/channels/:name/failed-tasks', {
    config: scope('read', channelGuard),
    schema: { operationId: 'coyotesListFailedTasks', tags: ['compat-coyotes'], summary: 'Failed tasks of a channel (failed, timed out or lost) by task id', params: CoyotesChannelParams, response: { 200: CoyotesTaskMap, ...coyotesErrors } },
  }, async (request) => ok(byTaskId(await tasks.failed(channelName(request.params.name)))));
  app.get<{ Params: { name: string; id: string } }>('/channels/:name/failed-tasks/:id', {
    config: scope('read', channelGuard),
    schema: { operationId: 'coyotesGetFailedTask', tags: ['compat-coyotes'], summary: 'One failed task', params: CoyotesTaskParams, response: { 200: CoyotesOneTask, ...coyotesErrors } },
  }, async (request) => ok(coyotesTask(await mustFail(channelName(request.params.name), request.params.id))));
  app.post<{ Params: { name: string; id: string } }>('/channels/:name/failed-tasks/:id', {
    config: scope('submit', channelGuard),
    schema: { operationId: 'coyotesRetryFailedTask', tags: ['compat-coyotes'], summary: 'Retry a failed task: it leaves the failed list and runs again under the same task id', params: CoyotesTaskParams, response: { 200: CoyotesPushed, ...coyotesErrors } },
  }, async (request) => {
    const name = channelName(request.params.name);
    const failed = await mustFail(name, request.params.id);
    // An archived job keeps no spec; a Coyotes task is its argv and labels, which its record holds.
    const stored = failed.archived ? null : await ctx.store.spec(failed.id);
    const base: JobSpec | null = stored ?? (failed.argv ? normalizeJobSpec({ argv: failed.argv, args: failed.args, queue: failed.queue, labels: failed.labels }, DEFAULT_SPEC_DEFAULTS) : null);
    if (!base) throw new DroverError('NOT_FOUND', `no failed task ${request.params.id} in channel ${name} that can run again (its spec is not kept)`);
    const taskId = taskIdOf(failed);
    const spec: JobSpec = { ...base, labels: { ...base.labels, [TASK_ID_LABEL]: taskId, 'coyotes.retryOf': failed.id } };
    const answer = await submitTask(request, spec, undefined, coyotesTask(failed).task_name as string, taskId);
    // As in Coyotes, a retried task is off the failed list; if it fails again it is back, under the same id.
    await tasks.dismiss([failed.id]);
    return ok(answer);
  });
  app.delete<{ Params: { name: string; id: string } }>('/channels/:name/failed-tasks/:id', {
    config: scope('submit', channelGuard),
    schema: { operationId: 'coyotesDeleteFailedTask', tags: ['compat-coyotes'], summary: 'Take a failed task off the failed list (its job record stays, as history); answers the task', params: CoyotesTaskParams, response: { 200: CoyotesOneTask, ...coyotesErrors } },
  }, async (request) => {
    const failed = await mustFail(channelName(request.params.name), request.params.id);
    await tasks.dismiss([failed.id]);
    return ok(coyotesTask(failed));
  });

  // Delayed tasks across channels: list, one, cancel.
  const mustDelay = async (id: string, principal: FastifyRequest['principal']): Promise<ReadJob> => {
    const job = await tasks.delayedOne(id, (q) => canSee(principal, [q]));
    if (!job) throw new DroverError('NOT_FOUND', `no delayed task ${id}`);
    if (job.status !== 'delayed') throw new DroverError('NOT_FOUND', `no delayed task ${id}: it is ${job.status} now`);
    return job;
  };
  app.get('/delay-tasks', { config: scope('read', 'handler'), schema: { operationId: 'coyotesListDelayedTasks', tags: ['compat-coyotes'], summary: 'Delayed tasks across channels, by task id', response: { 200: CoyotesTaskMap, ...coyotesErrors } } }, async (request) =>
    ok(byTaskId((await tasks.delayed()).filter((j) => canSee(request.principal, [j.queue])))),
  );
  app.get<{ Params: { id: string } }>('/delay-tasks/:id', {
    config: scope('read', delayedGuard),
    schema: { operationId: 'coyotesGetDelayedTask', tags: ['compat-coyotes'], summary: 'One delayed task', params: CoyotesIdParams, response: { 200: CoyotesOneTask, ...coyotesErrors } },
  }, async (request) => ok(coyotesTask(await mustDelay(request.params.id, request.principal))));
  app.delete<{ Params: { id: string } }>('/delay-tasks/:id', {
    config: scope('submit', delayedGuard),
    schema: { operationId: 'coyotesCancelDelayedTask', tags: ['compat-coyotes'], summary: 'Cancel a delayed task; answers the task', params: CoyotesIdParams, response: { 200: CoyotesOneTask, ...coyotesErrors } },
  }, async (request) => {
    const job = await mustDelay(request.params.id, request.principal);
    await ctx.store.cancel(job.id);
    return ok(coyotesTask(job));
  });

  // Other calls under Coyotes' paths (another method, a deeper path) answer in its envelope too, after the token check.
  for (const url of ['/channels/*', '/delay-tasks/*']) {
    app.all(url, { config: scope('read', 'none'), schema: { hide: true } }, async (request) => {
      throw new DroverError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
    });
  }
}
