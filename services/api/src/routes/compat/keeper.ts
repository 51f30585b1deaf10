import { DroverError, FAILED_STEP_STATUSES, isTerminal, type StepStatus } from '@drover/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../context.js';
import { canSee, guards, scheduleQueues, type ResourceGuard } from '../../queue-scope.js';
import { restartWorkflow } from '../workflows.js';
import { variablesOf } from '../variables.js';
import { parseCursor, readActionLogs, type LogMode } from './keeper-logs.js';
import {
  KeeperActionIds, KeeperActionKilled, KeeperActionParams, KeeperGlobalQuery, KeeperInstantQuery, KeeperJobParams, KeeperLogs, KeeperLogsQuery, KeeperOne,
  KeeperRestartQuery, KeeperTaskId, KeeperTaskParams, KeeperTokenQuery, keeperErrors,
} from './keeper-schemas.js';
import { allActions, currentActions, findTask, killJobs, noJob, noTask, runNow, scheduleJobs, taskQueues, type KeeperTask } from './keeper-tasks.js';

type TaskReq = { Params: { taskId: string } };
const tags = ['compat-keeper'];
const bad = (message: string): DroverError => new DroverError('VALIDATION', message);
/** A bare JSON value (a string would otherwise go out as text/plain, unquoted). */
const json = (reply: FastifyReply, value: unknown) => reply.type('application/json; charset=utf-8').send(JSON.stringify(value));

/**
 * Keeper's REST control API (seed 002) on Drover: a Keeper job (调度) is a schedule, a task (任务) one run of it (a
 * workflow run, or a plain schedule's job), an action a step's job. PUT by default, as Keeper documents; GET for
 * logs. The token comes as a bearer header or as Keeper's `?token=`. Answers are Keeper's bare values (task ids are
 * JSON strings); errors are Drover's `{"error": {"code", "message"}}`. Keeper's PQL engine routes answer 404.
 */
export function keeperRoutes(app: FastifyInstance, ctx: ApiContext): void {
  // Keeper's routes read no body: whatever a client sends with its PUT (nothing, an empty JSON body) is ignored.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined));
  // Answers are bare values, sent as JSON whatever their schema says.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  const tokenIn = ['query'] as const;
  const g = guards(ctx);

  /** The task named by a path parameter or the query's taskId (a missing one is the handler's 400). */
  const taskGuard = (from: 'params' | 'query'): ResourceGuard => ({
    queuesOf: async (r) => {
      const id = (r[from] as { taskId?: unknown } | undefined)?.taskId;
      if (typeof id !== 'string') return [];
      const task = await findTask(ctx, id);
      return task ? taskQueues(task) : null;
    },
    missing: (r) => noTask(String((r[from] as { taskId?: unknown }).taskId)),
  });
  const scheduleGuard: ResourceGuard = { ...g.schedule('jobId'), missing: (r) => noJob((r.params as { jobId: string }).jobId) };
  const actionGuard = g.job('actionId', (r) => new DroverError('NOT_FOUND', `no action ${(r.params as { actionId: string }).actionId}`));

  const mustTask = async (id: string, request: FastifyRequest): Promise<KeeperTask> => {
    const task = await findTask(ctx, id);
    // Another queue's task answers what a missing one does (the guard said so first; this is the backstop).
    if (!task || !canSee(request.principal, taskQueues(task))) throw noTask(id);
    return task;
  };
  const mustSchedule = async (name: string, request: FastifyRequest) => {
    const s = await ctx.schedules.get(name);
    if (!s || !canSee(request.principal, scheduleQueues(s))) throw noJob(name);
    return s;
  };

  app.put('/', { config: { scope: null, queues: 'none' }, schema: { hide: true } }, async (_request, reply) => json(reply, 'Keeper (Drover) is running.'));

  app.put<{ Params: { jobId: string }; Querystring: { delay?: number; ignore?: 'yes' | 'no' } }>(
    '/task/instant/:jobId',
    {
      config: { scope: 'submit', queues: scheduleGuard, tokenIn },
      schema: { operationId: 'keeperInstantTask', tags, summary: 'Run a job (schedule) now or after delay seconds; answers the new task id', params: KeeperJobParams, querystring: KeeperInstantQuery, response: { 200: KeeperTaskId, ...keeperErrors } },
    },
    async (request, reply) => {
      const s = await mustSchedule(request.params.jobId, request);
      const id = await runNow(ctx, s, { delayMs: (request.query.delay ?? 0) * 1000, ignoreDeps: request.query.ignore === 'yes' }, request.principal);
      return json(reply, id);
    },
  );

  /** Keeper's `more`: WHOLE, EXCEPTIONAL, or action ids (comma-separated). */
  const restart = async (request: FastifyRequest<TaskReq & { Querystring: { more: string } }>): Promise<string> => {
    const task = await mustTask(request.params.taskId, request);
    const more = request.query.more.trim();
    const mode = more.toUpperCase() === 'WHOLE' ? 'whole' : more.toUpperCase() === 'EXCEPTIONAL' ? 'failed' : 'actions';
    const ids = mode === 'actions' ? [...new Set(more.split(',').map((x) => x.trim()).filter(Boolean))] : [];
    if (mode === 'actions' && ids.length === 0) throw bad('more: WHOLE, EXCEPTIONAL or a comma-separated list of action ids');
    const current = currentActions(task);
    const strangers = ids.filter((id) => !current.includes(id));
    if (strangers.length > 0) throw bad(`more: ${strangers.join(', ')} ${strangers.length > 1 ? 'are not actions' : 'is not an action'} of task ${task.id}`);
    if (task.kind === 'workflow') {
      // A new task record: a new run of the schedule; a workflow of no (remaining) schedule runs again in its record.
      const s = mode === 'whole' && task.schedule ? await ctx.schedules.get(task.schedule) : null;
      if (s) return runNow(ctx, s, { delayMs: 0, ignoreDeps: false }, request.principal);
      const steps = task.wf.steps.filter((st) => (task.wf.jobs[st.name] ?? []).some((id) => ids.includes(id))).map((st) => st.name);
      await restartWorkflow(ctx, task.wf, mode === 'actions' ? { steps } : { mode }, request);
      return task.id;
    }
    // A plain schedule's task is its job: running it again, in any mode, is a new run of the schedule.
    if (task.copies.some((j) => !isTerminal(j.status))) throw new DroverError('CONFLICT', `task ${task.id} is still running; kill it first`);
    if (mode === 'failed' && !task.copies.some((j) => FAILED_STEP_STATUSES.includes(j.status as StepStatus))) throw new DroverError('CONFLICT', `task ${task.id} has no failed action`);
    return runNow(ctx, await mustSchedule(task.schedule, request), { delayMs: 0, ignoreDeps: false }, request.principal);
  };
  // The seed spells it restrat; both spellings are the same route.
  for (const [path, operationId, summary] of [
    ['/task/restart/:taskId', 'keeperRestartTask', 'Restart a task: WHOLE (a new task), EXCEPTIONAL (failed actions on, same task) or from given actions'],
    ['/task/restrat/:taskId', 'keeperRestartTaskAsDocumented', 'The same as /task/restart, as the Keeper page spells it'],
  ] as const) {
    app.put<TaskReq & { Querystring: { more: string } }>(
      path,
      {
        config: { scope: 'submit', queues: taskGuard('params'), tokenIn },
        schema: { operationId, tags, summary, params: KeeperTaskParams, querystring: KeeperRestartQuery, response: { 200: KeeperTaskId, ...keeperErrors } },
      },
      async (request, reply) => json(reply, await restart(request)),
    );
  }

  // The Keeper page's example spells it /kill/task/{id}; its list /task/kill/{id}.
  for (const [path, operationId, summary] of [
    ['/task/kill/:taskId', 'keeperKillTask', 'Kill a task: answers the interrupted action ids ([] when none ran)'],
    ['/kill/task/:taskId', 'keeperKillTaskAsInExample', 'The same as /task/kill, as the Keeper page\'s example spells it'],
  ] as const) {
    app.put<TaskReq>(
      path,
      { config: { scope: 'submit', queues: taskGuard('params'), tokenIn }, schema: { operationId, tags, summary, params: KeeperTaskParams, querystring: KeeperTokenQuery, response: { 200: KeeperActionIds, ...keeperErrors } } },
      async (request) => killJobs(ctx, currentActions(await mustTask(request.params.taskId, request))),
    );
  }

  app.put<{ Params: { jobId: string } }>(
    '/job/kill/:jobId',
    {
      config: { scope: 'submit', queues: scheduleGuard, tokenIn },
      schema: { operationId: 'keeperKillJob', tags, summary: 'Kill every running task of a job (schedule), which stays; answers the interrupted action ids', params: KeeperJobParams, querystring: KeeperTokenQuery, response: { 200: KeeperActionIds, ...keeperErrors } },
    },
    async (request) => killJobs(ctx, await scheduleJobs(ctx, await mustSchedule(request.params.jobId, request))),
  );

  app.put<{ Params: { actionId: string } }>(
    '/action/kill/:actionId',
    {
      config: { scope: 'submit', queues: actionGuard, tokenIn },
      schema: { operationId: 'keeperKillAction', tags, summary: 'Kill a running action: answers its id, or 0 when it was not running', params: KeeperActionParams, querystring: KeeperTokenQuery, response: { 200: KeeperActionKilled, ...keeperErrors } },
    },
    async (request, reply) => {
      const { actionId } = request.params;
      const job = await ctx.store.get(actionId);
      if (!job || !canSee(request.principal, [job.queue])) throw new DroverError('NOT_FOUND', `no action ${actionId}`);
      // Only a running action is killed; one that waits is left as it is, as Keeper does.
      if (job.status !== 'running') return json(reply, 0);
      const killed = await killJobs(ctx, [actionId]);
      return json(reply, killed.length > 0 ? actionId : 0);
    },
  );

  app.get<{ Querystring: { jobId?: string; taskId: string; actionId?: string; cursor?: string; mode?: LogMode } }>(
    '/task/logs',
    {
      config: { scope: 'read', queues: taskGuard('query'), tokenIn },
      schema: { operationId: 'keeperTaskLogs', tags, summary: 'A task\'s output, at most 100 lines a call, and the cursor to go on', querystring: KeeperLogsQuery, response: { 200: KeeperLogs, ...keeperErrors } },
    },
    async (request) => {
      const { jobId, taskId, actionId = '0', cursor, mode = 'all' } = request.query;
      const task = await mustTask(taskId, request);
      if (jobId !== undefined && jobId !== task.schedule) throw new DroverError('NOT_FOUND', `task ${taskId} is not a run of job ${jobId}`);
      const actions = allActions(task);
      if (actionId !== '0' && !actions.includes(actionId)) throw new DroverError('NOT_FOUND', `no action ${actionId} in task ${taskId}`);
      return readActionLogs(ctx, actionId === '0' ? actions : [actionId], parseCursor(cursor), mode);
    },
  );

  app.put<{ Querystring: { name: string; value: string } }>(
    '/global/set',
    {
      config: { scope: 'admin', queues: 'global', tokenIn },
      schema: { operationId: 'keeperSetGlobal', tags, summary: 'Set an operator variable: env of every job started from now on (PUT /v1/variables/{name})', querystring: KeeperGlobalQuery, response: { 200: KeeperOne, ...keeperErrors } },
    },
    async (request) => {
      await variablesOf(ctx).set(request.query.name, request.query.value);
      return 1;
    },
  );

  app.put(
    '/configurations/reload',
    {
      config: { scope: 'admin', queues: 'none', tokenIn },
      schema: { operationId: 'keeperReloadConfigurations', tags, summary: 'Answers 1: Drover reads no data sources, connections or PQL functions to reload', querystring: KeeperTokenQuery, response: { 200: KeeperOne, ...keeperErrors } },
    },
    async () => 1,
  );

  // Keeper's PQL engine (data connections, PQL functions and variables) has no counterpart in Drover.
  for (const prefix of ['connection', 'function', 'variable']) {
    app.route({
      method: ['PUT', 'GET', 'POST', 'DELETE'],
      url: `/${prefix}/*`,
      config: { scope: 'read', queues: 'none', tokenIn },
      schema: { hide: true },
      handler: async (request) => {
        throw new DroverError('NOT_FOUND', `${request.url.split('?')[0]} belongs to Keeper's PQL engine (data connections, PQL functions and variables), which Drover does not have; nothing was done`);
      },
    });
  }
}
