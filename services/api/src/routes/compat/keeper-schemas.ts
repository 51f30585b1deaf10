import { JOB_ID_PATTERN } from '@drover/core';
import { Type } from 'typebox';
import { errorResponses } from '../../schemas.js';

/**
 * Keeper's wire forms (seed 002). Query strings are validated by these schemas (coerced, as every query string is);
 * answers are Keeper's bare JSON values. Errors keep Drover's envelope `{"error": {"code", "message"}}`: Keeper's
 * page documents none.
 */
const token = {
  token: Type.Optional(Type.String({
    description: 'The API token, instead of `Authorization: Bearer` (Keeper clients send it so). A URL lands in the access logs of proxies in front: prefer the header.',
  })),
};
const strict = { additionalProperties: false } as const;
/** Keeper's user ids (creator, starter): accepted and not recorded; Drover knows the caller by its token. */
const userId = Type.Optional(Type.String({ maxLength: 64, description: "Keeper's user id of who acts (default 0): accepted, not recorded (the token says who)." }));

export const KeeperJobParams = Type.Object({ jobId: Type.String({ maxLength: 64, description: 'Job (调度): the name of a Drover schedule, plain or workflow.' }) }, strict);
export const KeeperTaskParams = Type.Object({ taskId: Type.String({ maxLength: 26, description: "Task (任务): the workflow run's id, or the job's id for a plain schedule." }) }, strict);
export const KeeperActionParams = Type.Object({ actionId: Type.String({ maxLength: 26, description: "Action: a step's job id." }) }, strict);

export const KeeperTokenQuery = Type.Object(token, strict);
export const KeeperInstantQuery = Type.Object({
  ...token,
  creator: userId,
  delay: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, description: 'Seconds to wait before the run starts (0-60, default 0); the run shows as delayed meanwhile.' })),
  ignore: Type.Optional(Type.Union([Type.Literal('yes'), Type.Literal('no')], { description: "yes: run without waiting for the job's dependencies (dependsOn); default no." })),
}, strict);
export const KeeperRestartQuery = Type.Object({
  ...token,
  more: Type.String({
    minLength: 1,
    maxLength: 8192,
    description: 'WHOLE: a new task (a new run of the schedule); EXCEPTIONAL: the failed and skipped actions and what follows them, in the same task; or comma-separated action ids: from those, whatever their state, in the same task.',
  }),
  starter: userId,
}, strict);
export const KeeperLogsQuery = Type.Object({
  ...token,
  jobId: Type.Optional(Type.String({ maxLength: 64, description: "The task's job (schedule name); when given, it must be the task's." })),
  taskId: Type.String({ pattern: JOB_ID_PATTERN, description: 'The task.' }),
  recordTime: Type.Optional(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}$', description: 'Keeper\'s record time (yyyy-MM-dd HH:mm:ss): checked for its form, not needed (the task id is enough).' })),
  actionId: Type.Optional(Type.String({ maxLength: 26, description: "One action's output (a step's job id); 0 (default): every action's." })),
  cursor: Type.Optional(Type.String({ maxLength: 16384, description: 'Where the previous call stopped (its `cursor`); 0 (default): from the start.' })),
  mode: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('debug'), Type.Literal('error')], { description: 'all (default); debug: stdout; error: stderr.' })),
}, strict);
export const KeeperGlobalQuery = Type.Object({
  ...token,
  name: Type.String({ maxLength: 128, description: 'An environment variable name.' }),
  value: Type.String({ description: 'Its value: env of every job started from now on (the job\'s own env wins).' }),
}, strict);

export const KeeperTaskId = Type.String({ description: 'The task id, as a JSON string.' });
export const KeeperActionIds = Type.Array(Type.String(), { description: 'The actions (job ids) that were running and are being stopped; [] when none ran.' });
export const KeeperActionKilled = Type.Union([Type.String({ description: 'The action id: it was running and is being stopped.' }), Type.Literal(0, { description: 'It was not running.' })]);
export const KeeperOne = Type.Literal(1, { description: 'Done (always 1, as in Keeper).' });
export const KeeperLogs = Type.Object({
  logs: Type.Array(Type.Object({
    line: Type.String(),
    stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr'), Type.Literal('system')], { description: 'system: lines Drover adds itself.' }),
    ts: Type.String({ format: 'date-time', description: 'When the runner read the line.' }),
    actionId: Type.String({ description: 'The action (job) that wrote it.' }),
  }), { maxItems: 100 }),
  cursor: Type.String({ description: 'Pass it back to read on; opaque (not a number as in Keeper).' }),
});

export const keeperErrors = errorResponses(400, 401, 403, 404, 409, 429, 503);
