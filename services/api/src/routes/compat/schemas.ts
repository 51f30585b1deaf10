import type { FastifyInstance } from 'fastify';
import { Type, type TSchema } from 'typebox';

/**
 * The adapters check their input themselves, with the messages their clients know (Meproc's "Invalid JSON field:
 * ..."), and answer in their own envelopes: in their scope the schemas document the wire form for the OpenAPI
 * document and neither validate nor shape what is sent (a schema-driven serializer would drop fields it does not
 * know). The OpenAPI test checks real answers against these schemas.
 */
export function documentOnlySchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}


// Meproc: {code, msg, data?}, code = the HTTP status.
const meprocOk = (data?: TSchema) =>
  Type.Object({ code: Type.Literal(200), msg: Type.Literal('OK'), ...(data ? { data } : {}) }, { description: 'Done' });
const MeprocError = Type.Object({ code: Type.Integer({ description: 'The HTTP status again.' }), msg: Type.String() });

/** Meproc's error answers: 400 bad input, 401 no token, 403 scope (and Meproc's "Program exists" / "not exists"), 429, 503. */
export const meprocErrors = { 400: MeprocError, 401: MeprocError, 403: MeprocError, 429: MeprocError, 503: MeprocError };
export const MeprocNameQuery = Type.Object({ name: Type.String({ description: 'The task name.' }) });

export const MeprocTaskInput = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$', description: 'Unique task name; other tasks depend on it by this name.' }),
  cmd: Type.String({ minLength: 1, description: 'Command line, run by /bin/sh -c.' }),
  type: Type.Union([Type.Literal('once'), Type.Literal('daemon'), Type.Literal('cron')], { description: 'once; daemon: restarted `interval` ms after each exit; cron: fired by `cron`.' }),
  replica: Type.Integer({ minimum: 1, description: 'Copies run side by side.' }),
  user: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Run as this user (must be in RUNNER_ALLOWED_USERS).' })),
  group: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Run as this group (must be in RUNNER_ALLOWED_GROUPS).' })),
  deps: Type.Optional(Type.Array(Type.String(), { maxItems: 64, description: 'Tasks (by name) whose runs must succeed first.' })),
  interval: Type.Optional(Type.Integer({ minimum: 1, description: 'Daemons: ms between an exit and the next start (default 3000).' })),
  cron: Type.Optional(Type.String({ description: "Cron tasks: the expression (UTC; default '* * * * *')." })),
});

export const MeprocOk = meprocOk();
export const MeprocList = meprocOk(
  Type.Object({
    running: Type.Array(Type.Object({ command: Type.String(), pid: Type.Integer(), alias: Type.String({ description: '`<name>:<replica>`' }) })),
    tasks: Type.Record(Type.String(), Type.Object({
      name: Type.String(),
      cmd: Type.String(),
      type: Type.String(),
      replica: Type.Integer(),
      user: Type.Union([Type.String(), Type.Null()]),
      group: Type.Union([Type.String(), Type.Null()]),
      deps: Type.Array(Type.String()),
      interval: Type.Integer(),
      cron: Type.Optional(Type.String()),
      start_time: Type.Integer({ description: 'Epoch seconds of the first start.' }),
      last_time: Type.Integer({ description: 'Epoch seconds of the last (re)start.' }),
      run_flag: Type.Boolean(),
      running: Type.Integer(),
    }), { description: 'Registered tasks by name.' }),
  }),
);
export const MeprocOutput = meprocOk(Type.Record(Type.String(), Type.String({ format: 'byte' }), { description: "Output of each copy of the latest start (`<name>:<replica>`), base64." }));

// Coyotes: {status_code, message, data}.
const coyotesOk = (data: TSchema) => Type.Object({ status_code: Type.Literal(200), message: Type.Literal('ok'), data }, { description: 'Done' });
const CoyotesError = Type.Object({ status_code: Type.Integer({ description: 'The HTTP status again.' }), message: Type.String(), data: Type.Null() });
export const coyotesErrors = { 400: CoyotesError, 401: CoyotesError, 403: CoyotesError, 404: CoyotesError, 429: CoyotesError, 503: CoyotesError };

const CoyotesTask = Type.Object({
  task_id: Type.String(),
  task_name: Type.String(),
  command: Type.Object({ name: Type.String(), args: Type.Array(Type.String()) }),
  channel: Type.String(),
  status: Type.String({ description: 'queued, running or failed' }),
  execute_at: Type.String({ description: 'When a delayed task runs (ISO time), else empty.' }),
  retry_count: Type.Integer(),
  failed_at: Type.String({ description: 'When it failed (ISO time), else empty.' }),
});
const CoyotesTasks = Type.Object({ tasks: Type.Array(CoyotesTask), count: Type.Integer() });

export const CoyotesChannelParams = Type.Object({ name: Type.String({ description: 'Channel (queue) name.' }) });
export const CoyotesTaskParams = Type.Object({ name: Type.String({ description: 'Channel (queue) name.' }), id: Type.String({ description: 'Task (job) id.' }) });
export const CoyotesIdParams = Type.Object({ id: Type.String({ description: 'Task (job) id.' }) });
/** Form fields (urlencoded or multipart) or the same as JSON. */
export const COYOTES_CONSUMES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'];

export const CoyotesChannelInput = Type.Object({
  name: Type.String({ description: 'Channel (queue) name.' }),
  distinct: Type.Optional(Type.String({ enum: ['true', 'false', '1', '0'], description: 'Drop a task whose command is already queued or running.' })),
  worker: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$', description: 'Most tasks of the channel running at once, across runners.' })),
});
export const CoyotesTaskInput = Type.Object({
  task: Type.String({ minLength: 1, description: 'The task line: split on spaces and run without a shell, unless `command` is given.' }),
  command: Type.Optional(Type.String({ description: 'The program; `args` are its arguments.' })),
  args: Type.Optional(Type.Array(Type.String())),
  delay: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: 'Run after this many seconds.' })),
  id: Type.Optional(Type.String({ description: "The client's own id, kept as label coyotes.id." })),
});

export const CoyotesOk = coyotesOk(Type.Null());
export const CoyotesChannels = coyotesOk(Type.Record(Type.String(), CoyotesTasks, { description: 'Unfinished tasks by channel.' }));
export const CoyotesChannel = coyotesOk(CoyotesTasks);
export const CoyotesDeleted = coyotesOk(Type.Object({ cancelled: Type.Integer({ description: 'Queued tasks dropped with the channel.' }) }));
export const CoyotesPushed = coyotesOk(Type.Object({ task_id: Type.String(), task_name: Type.String(), result: Type.Boolean({ description: 'false: a duplicate in a distinct channel, not queued again.' }) }));
export const CoyotesOneTask = coyotesOk(CoyotesTask);
