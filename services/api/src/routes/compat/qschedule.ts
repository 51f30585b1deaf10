import { DroverError, ERROR_CODES, firePayload, isTerminal, type ErrorCode, type JobRecord, type ScheduleRecord } from '@drover/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../../auth.js';
import type { ApiContext } from '../../context.js';
import { describeError } from '../../errors.js';
import { canSee, scheduleQueues } from '../../queue-scope.js';
import { submitWarnings } from '../../queue-consumers.js';
import { assertSubmittable } from '../jobs.js';
import { setSchedulesEnabled, triggerSchedule } from '../schedules.js';
import { documentOnlySchemas } from './schemas.js';
import { qscheduleJob } from './qschedule-view.js';
import {
  QsJobInfo, QsNameParams, QsNamesInput, QsOk, QsTaskInput, QsTokenQuery, qscheduleErrors,
} from './qschedule-schemas.js';

type Body = Record<string, unknown>;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** qschedule's messages for Drover's error codes; a failure of the store or broker gets the route's own. */
const MESSAGES: Partial<Record<ErrorCode, string>> = {
  VALIDATION: '参数错误',
  UNAUTHORIZED: '授权失败',
  FORBIDDEN: '授权失败',
  NOT_FOUND: 'job不存在',
  RATE_LIMITED: '请求过于频繁',
};

const bad = (detail: string): DroverError => new DroverError('VALIDATION', detail);

/** A `<name>.do` path segment's name; anything else is no qschedule path. */
function nameOf(file: string): string {
  if (!file.endsWith('.do') || file.length <= 3) throw new DroverError('NOT_FOUND', `no such path: ${file} (qschedule paths end in .do)`);
  return file.slice(0, -3);
}

/** A JSON body as an object (clients send JSON, sometimes labelled as a form). */
function bodyOf(request: FastifyRequest): Body {
  const b = request.body;
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw bad('a JSON object body is required');
  return b as Body;
}

/** qschedule's `param` as the run's environment: QSCHEDULE_PARAMS (JSON), and each key that is an env name. */
export function paramEnv(param: unknown): Record<string, string> {
  if (param === undefined || param === null) return {};
  if (typeof param !== 'object' || Array.isArray(param)) throw bad('param must be an object');
  const env: Record<string, string> = { QSCHEDULE_PARAMS: JSON.stringify(param) };
  for (const [k, v] of Object.entries(param as Body)) {
    if (ENV_NAME.test(k)) env[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return env;
}

/**
 * qschedule's HTTP interface (seed 003) on Drover: a qschedule job is a Drover schedule, a task one run of it.
 * Envelope `{ret, message, data?}` with qschedule's messages (errors also carry `detail` in English and a 4xx/5xx
 * status). The token comes as qschedule sent it (body or `?token=`) or as a bearer header.
 */
export function qscheduleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  documentOnlySchemas(app);
  app.setErrorHandler((thrown, request, reply) => {
    const body = describeError(thrown, request);
    const status = ERROR_CODES[body.code].status;
    const message = MESSAGES[body.code] ?? request.routeOptions.config.qsFailure ?? '内部错误';
    void reply.status(status).send({ ret: false, message, detail: body.message });
  });
  const ok = (data?: unknown) => ({ ret: true, message: '操作成功', ...(data === undefined ? {} : { data }) });
  const tags = ['compat-qschedule'];
  const tokenIn = ['query', 'body'] as const;

  /** The schedule, if this caller may see it; else NOT_FOUND (job不存在), the same for another queue's. */
  const visible = async (name: string, principal: Principal | undefined): Promise<ScheduleRecord> => {
    const s = await ctx.schedules.get(name);
    if (!s || !canSee(principal, scheduleQueues(s))) throw new DroverError('NOT_FOUND', `no job (schedule) ${name}`);
    return s;
  };

  /** The job info of a schedule: its run in progress, its latest job, whether anyone serves its jobs. */
  const info = async (s: ScheduleRecord): Promise<Record<string, unknown>> => {
    const ids = [...s.runningJobs, ...(s.lastJobId ? [s.lastJobId] : [])];
    const jobs = new Map((await ctx.store.getMany(ids)).map((j) => [j.id, j] as const));
    const current: JobRecord | undefined = s.runningJobs.map((id) => jobs.get(id)).find((j) => j && !isTerminal(j.status));
    const latest = current ?? (s.lastJobId ? jobs.get(s.lastJobId) : undefined);
    const served = (await submitWarnings(ctx.runners, scheduleQueues(s), ctx.log)).length === 0;
    return qscheduleJob(s, { current, latest, served });
  };

  for (const action of ['on', 'off'] as const) {
    app.post(
      `/api/jobs/${action}.do`,
      {
        config: { scope: 'submit', queues: 'handler', tokenIn, qsFailure: action === 'on' ? '启用失败' : '停止失败' },
        schema: {
          operationId: `qschedule${action === 'on' ? 'Enable' : 'Disable'}Jobs`, tags,
          summary: `${action === 'on' ? 'Enable' : 'Disable'} jobs (schedules): all or none`,
          body: QsNamesInput, response: { 200: QsOk, ...qscheduleErrors },
        },
      },
      async (request) => {
        const { jobs } = bodyOf(request);
        if (!Array.isArray(jobs) || jobs.length === 0 || !jobs.every((j) => typeof j === 'string' && j !== '')) throw bad('jobs must be a non-empty list of job names');
        await setSchedulesEnabled(ctx, [...new Set(jobs as string[])], action === 'on', request.principal);
        return ok();
      },
    );
  }

  app.get<{ Params: { file: string } }>(
    '/api/jobs/:file',
    {
      config: { scope: 'read', queues: 'handler', tokenIn, qsFailure: '查询失败' },
      schema: { operationId: 'qscheduleJobInfo', tags, summary: 'A job\'s (schedule\'s) info with qschedule\'s fields: GET /api/jobs/<name>.do', params: QsNameParams, querystring: QsTokenQuery, response: { 200: QsJobInfo, ...qscheduleErrors } },
    },
    async (request) => ok(await info(await visible(nameOf(request.params.file), request.principal))),
  );

  app.post(
    '/api/tasks.do',
    {
      config: { scope: 'submit', queues: 'handler', tokenIn, qsFailure: '重试失败' },
      schema: { operationId: 'qscheduleRunTask', tags, summary: 'Run a job now with parameters; the message is the new task id', body: QsTaskInput, response: { 200: QsOk, ...qscheduleErrors } },
    },
    async (request) => {
      const { job, param } = bodyOf(request);
      if (typeof job !== 'string' || job === '') throw bad('job must be a job name');
      const env = paramEnv(param);
      const s = await visible(job, request.principal);
      if (s.workflow && Object.keys(env).length > 0) throw bad('a workflow job runs without param');
      const now = Date.now();
      const payload = firePayload(s.name, s, now, s.job && Object.keys(env).length > 0 ? { env: { ...s.job.env, ...env } } : undefined);
      if (payload.spec) assertSubmittable(ctx, request.principal, payload.spec, 'job');
      if (!(await triggerSchedule(ctx, s.name, payload, null, now))) throw new DroverError('NOT_FOUND', `no job (schedule) ${s.name}`);
      // A task id: the run's workflow id, or its job's id.
      const task = payload.bundle ? (JSON.parse(payload.bundle) as { workflowId: string }).workflowId : payload.jobIds[0]!;
      return { ret: true, message: task };
    },
  );
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** qschedule's message for a failure of this route that is not the caller's (启用失败, 查询失败, ...). */
    qsFailure?: string;
  }
}
