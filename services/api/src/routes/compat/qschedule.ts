import { isIP } from 'node:net';
import {
  DroverError, ERROR_CODES, canonicalAddress, constraintProblems, consumersOf, firePayload, isTerminal, normalizeConstraints, satisfies, timingOf,
  type ErrorCode, type JobRecord, type JobTemplate, type RunnerView, type ScheduleDef, type ScheduleRecord,
} from '@drover/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../../auth.js';
import type { ApiContext } from '../../context.js';
import { describeError } from '../../errors.js';
import { canSee, scheduleQueues } from '../../queue-scope.js';
import { submitWarnings } from '../../queue-consumers.js';
import { assertSubmittable } from '../jobs.js';
import { firstFire, setSchedulesEnabled, triggerSchedule } from '../schedules.js';
import { documentOnlySchemas } from './schemas.js';
import { qscheduleJob } from './qschedule-view.js';
import {
  QsJobInfo, QsJobList, QsNameParams, QsNamesInput, QsOk, QsTaskInput, QsTokenQuery, QsWorkers, QsWorkersInput, qscheduleErrors,
} from './qschedule-schemas.js';

type Body = Record<string, unknown>;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Most running jobs /api/check reads (the fleet's slots are far fewer). */
const MAX_RUNNING_READ = 10_000;

/** qschedule's messages for Drover's error codes; a failure of the store or broker gets the route's own. */
const MESSAGES: Partial<Record<ErrorCode, string>> = {
  VALIDATION: '参数错误',
  INVALID_JSON: '参数错误',
  BODY_TOO_LARGE: '参数错误',
  UNSUPPORTED_MEDIA_TYPE: '参数错误',
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

/** The host of qschedule's `host:port` worker key (`[v6]:port`, a bare address or host name as they are). */
export function workerHost(key: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(key);
  if (bracketed) return bracketed[1]!;
  if (isIP(key) === 6) return key;
  const colon = key.lastIndexOf(':');
  return colon > 0 && /^\d+$/.test(key.slice(colon + 1)) ? key.slice(0, colon) : key;
}

/** A runner answers to this host as qschedule's check does: host name (or its first labels), address or id. */
function isHost(r: RunnerView, given: string): boolean {
  const want = given.toLowerCase();
  const host = r.host?.toLowerCase() ?? '';
  return r.id === given || r.addresses.includes(canonicalAddress(want)) || host === want || host.startsWith(`${want}.`) || want.startsWith(`${host}.`);
}

/** The job templates of a schedule: its job, or every step's job. */
function templatesOf(s: ScheduleDef): JobTemplate[] {
  return s.workflow ? s.workflow.steps.map((st) => st.job) : s.job ? [s.job] : [];
}

/** A schedule's definition (its timing included) with each job template's constraints.notHost replaced. */
function withOffline(s: ScheduleRecord, offline: string[]): ScheduleDef {
  const place = (t: JobTemplate): JobTemplate => {
    const constraints = normalizeConstraints({ ...t.constraints, notHost: offline.length > 0 ? offline : undefined });
    const job = { ...t };
    delete job.constraints;
    return constraints ? { ...job, constraints } : job;
  };
  return {
    cron: s.cron, timezone: s.timezone, overlap: s.overlap, misfire: s.misfire, description: s.description, alertAfterFailures: s.alertAfterFailures,
    ...timingOf({}, s),
    ...(s.job ? { job: place(s.job) } : {}),
    ...(s.workflow ? { workflow: { ...s.workflow, steps: s.workflow.steps.map((st) => ({ ...st, job: place(st.job) })) } } : {}),
  };
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
    const own = thrown instanceof DroverError ? (thrown.details as { qsMessage?: string } | undefined)?.qsMessage : undefined;
    const message = own ?? MESSAGES[body.code] ?? request.routeOptions.config.qsFailure ?? '内部错误';
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
    // Served: some live runner takes its queue and satisfies its constraints (workers taken offline included).
    const specs = templatesOf(s).map((t) => ({ queue: t.queue ?? 'default', constraints: normalizeConstraints(t.constraints) }));
    const served = (await submitWarnings(ctx.runners, specs, ctx.log)).length === 0;
    const runner = latest?.runnerId ? await ctx.runners.get(latest.runnerId) : undefined;
    return qscheduleJob(s, { current, latest, served, latestHost: runner?.host ?? latest?.runnerId ?? '' });
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

  /** The live runners that serve every queue of the schedule: its workers. */
  const workersOf = async (s: ScheduleRecord): Promise<RunnerView[]> => {
    const queues = scheduleQueues(s);
    return (await ctx.runners.list()).filter((r) => r.state !== 'offline' && queues.every((q) => consumersOf([r], q).length > 0));
  };
  const mayRun = (s: ScheduleDef, r: RunnerView): boolean => templatesOf(s).every((t) => satisfies(normalizeConstraints(t.constraints), r));

  app.post(
    '/api/workers/state.do',
    {
      config: { scope: 'submit', queues: 'handler', tokenIn, qsFailure: '操作失败' },
      schema: { operationId: 'qscheduleSetWorkers', tags, summary: 'Take workers (runners) offline or online for one job: its constraints.notHost', body: QsWorkersInput, response: { 200: QsOk, ...qscheduleErrors } },
    },
    async (request) => {
      const { jobName, workers } = bodyOf(request);
      if (typeof jobName !== 'string' || jobName === '') throw bad('jobName must be a job name');
      let map: unknown = workers;
      if (typeof workers === 'string') {
        try {
          map = JSON.parse(workers);
        } catch {
          map = undefined;
        }
      }
      const entries = map && typeof map === 'object' && !Array.isArray(map) ? Object.entries(map as Body) : [];
      if (entries.length === 0 || !entries.every(([k, v]) => k !== '' && typeof v === 'boolean')) {
        throw new DroverError('VALIDATION', 'workers must be a JSON object of "host:port": true|false', { qsMessage: 'workers json 格式非法' });
      }
      const s = await visible(jobName, request.principal);
      const offline = new Set(templatesOf(s).flatMap((t) => t.constraints?.notHost ?? []));
      for (const [key, online] of entries) {
        const host = canonicalAddress(workerHost(key).toLowerCase());
        if (online) offline.delete(host);
        else offline.add(host);
      }
      const def = withOffline(s, [...offline]);
      const problems = templatesOf(def).flatMap((t) => constraintProblems(t.constraints));
      if (problems.length > 0) throw bad(problems.map((p) => p.message).join('; '));
      const takesOffline = entries.some(([, online]) => online === false);
      if (takesOffline && !(await workersOf(s)).some((r) => mayRun(def, r))) {
        throw new DroverError('CONFLICT', 'no live runner that serves this job would be left to run it', { qsMessage: '所有机器不能全部下线' });
      }
      const now = Date.now();
      if (!(await ctx.schedules.put('update', s.name, def, s.enabled, s.enabled ? await firstFire(ctx, def, now) : null, now))) {
        throw new DroverError('NOT_FOUND', `no job (schedule) ${s.name}`);
      }
      return ok();
    },
  );

  app.get<{ Params: { file: string } }>(
    '/api/workers/:file',
    {
      config: { scope: 'read', queues: 'handler', tokenIn, qsFailure: '查询失败' },
      schema: { operationId: 'qscheduleWorkers', tags, summary: 'The workers (runners) of a job and whether each may run it: GET /api/workers/<name>.do', params: QsNameParams, querystring: QsTokenQuery, response: { 200: QsWorkers, ...qscheduleErrors } },
    },
    async (request) => {
      const s = await visible(nameOf(request.params.file), request.principal);
      const live = await workersOf(s);
      const listed = live.map((r) => ({ address: r.addresses[0] ?? r.host ?? r.id, hostname: r.host ?? r.id, canSchedule: mayRun(s, r), jobName: s.name, online: true }));
      // Workers taken offline that no live runner answers to any more: still listed, as qschedule keeps them.
      const gone = [...new Set(templatesOf(s).flatMap((t) => t.constraints?.notHost ?? []))]
        .filter((h) => !live.some((r) => isHost(r, h)))
        .map((h) => ({ address: h, hostname: h, canSchedule: false, jobName: s.name, online: false }));
      return ok([...listed, ...gone]);
    },
  );

  app.get<{ Params: { file: string } }>(
    '/api/check/:file',
    {
      config: { scope: 'read', queues: 'handler', tokenIn, qsFailure: '查询失败' },
      schema: { operationId: 'qscheduleCheckHost', tags, summary: 'The jobs (schedules) with a run in progress on a host (its address or host name): GET /api/check/<host>.do', params: QsNameParams, querystring: QsTokenQuery, response: { 200: QsJobList, ...qscheduleErrors } },
    },
    async (request) => {
      const host = nameOf(request.params.file);
      const runners = new Set((await ctx.runners.list()).filter((r) => r.state !== 'offline' && isHost(r, host)).map((r) => r.id));
      // The store's running jobs, not the registry's (a heartbeat old): as many as the fleet's slots, read in pages.
      const running = runners.size === 0 ? [] : await ctx.store.redis.zrange(ctx.store.keys.index(undefined, 'running'), 0, MAX_RUNNING_READ - 1);
      const jobs = (await ctx.store.getMany(running)).filter((j) => j.status === 'running' && j.runnerId !== null && runners.has(j.runnerId));
      const names = [...new Set(jobs.filter((j) => j.schedule).map((j) => j.schedule!))].sort();
      const schedules = (await Promise.all(names.map((n) => ctx.schedules.get(n)))).filter((s): s is ScheduleRecord => s !== null && canSee(request.principal, scheduleQueues(s)));
      return ok(await Promise.all(schedules.map(info)));
    },
  );
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** qschedule's message for a failure of this route that is not the caller's (启用失败, 查询失败, ...). */
    qsFailure?: string;
  }
}
