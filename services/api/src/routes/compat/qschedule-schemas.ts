import { Type, type TSchema } from 'typebox';

// qschedule: {ret, message, data?}. Its clients read `ret` and `message`; Drover adds `detail` (English) to errors.
const ok = (data?: TSchema) =>
  Type.Object({ ret: Type.Literal(true), message: Type.String({ description: '操作成功, or the new task id.' }), ...(data ? { data } : {}) }, { description: 'Done' });
const QsError = Type.Object({
  ret: Type.Literal(false),
  message: Type.String({ description: "qschedule's message: 参数错误 (bad input), 授权失败 (token), job不存在 (no such job), 所有机器不能全部下线 (every worker offline), 内部错误 (internal)." }),
  detail: Type.Optional(Type.String({ description: 'What exactly was wrong, in English (Drover\'s addition).' })),
});
export const qscheduleErrors = { 400: QsError, 401: QsError, 403: QsError, 404: QsError, 429: QsError, 503: QsError };

export const QsJob = Type.Object({
  name: Type.String(),
  desc: Type.String(),
  cron: Type.String(),
  state: Type.Boolean({ description: 'Enabled.' }),
  type: Type.String({ description: 'Always remote: runners run it.' }),
  recover: Type.String({ description: 'retry or discard: the job\'s onLost.' }),
  timeout: Type.Integer({ description: 'alertAfterMs of its job (0: none): an alert, not a kill.' }),
  lastRun: Type.Integer({ description: 'Epoch ms the latest run started (0: never).' }),
  lastRunHost: Type.String({ description: 'The runner of the latest run.' }),
  lastState: Type.Integer({ description: '100 starting, 200 started, 300 done, 400 ignored (cancelled), -100 failed, -200 no runner serves it, 0 never ran.' }),
  lastUpdate: Type.Integer(),
  lastDuration: Type.Integer({ description: 'ms.' }),
  nextRun: Type.Integer({ description: 'Epoch ms of the next fire (0: disabled).' }),
  consecutiveFailTimesAlertThreshold: Type.Integer({ description: 'alertAfterFailures (0: none).' }),
  loadBalance: Type.String(),
  parameter: Type.String(),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
  appId: Type.Integer(),
  appName: Type.String({ description: 'The queue.' }),
  appCode: Type.String({ description: 'The queue.' }),
});
export const QsWorker = Type.Object({
  address: Type.String(),
  hostname: Type.String(),
  canSchedule: Type.Boolean(),
  jobName: Type.String(),
  online: Type.Boolean({ description: 'A live runner serves it now (Drover\'s addition).' }),
});

export const QsOk = ok();
export const QsJobInfo = ok(QsJob);
export const QsJobList = ok(Type.Array(QsJob));
export const QsWorkers = ok(Type.Array(QsWorker));
export const QsNamesInput = Type.Object({ jobs: Type.Array(Type.String(), { minItems: 1 }), token: Type.Optional(Type.String()) });
export const QsTaskInput = Type.Object({
  job: Type.String(),
  param: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Given to the run as env QSCHEDULE_PARAMS (JSON) and, for keys that are env names, as those variables.' })),
  token: Type.Optional(Type.String()),
});
export const QsWorkersInput = Type.Object({
  jobName: Type.String(),
  workers: Type.Union([Type.Record(Type.String(), Type.Boolean()), Type.String({ description: 'The same map as a JSON string, as qschedule\'s clients send it.' })]),
  token: Type.Optional(Type.String()),
});
export const QsNameParams = Type.Object({ file: Type.String({ description: '`<name>.do`' }) });
export const QsTokenQuery = Type.Object({ token: Type.Optional(Type.String()) });
