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
  replica: Type.Optional(Type.Integer({ minimum: 1, description: 'Copies run side by side (default 1).' })),
  user: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Run as this user (must be in RUNNER_ALLOWED_USERS).' })),
  group: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'Run as this group (must be in RUNNER_ALLOWED_GROUPS).' })),
  deps: Type.Optional(Type.Array(Type.String(), { maxItems: 64, description: 'Tasks (by name): while any of them (or their deps) runs, this one waits; one that never ran does not hold it.' })),
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
      start_time: Type.Integer({ description: 'Epoch seconds of the last POST or PUT.' }),
      last_time: Type.Integer({ description: 'Epoch seconds its processes last started (a daemon restart, a cron run included); 0 before the first.' }),
      run_flag: Type.Boolean({ description: 'Waiting to start until its deps stop running.' }),
      running: Type.Integer({ description: 'Its processes running now.' }),
    }), { description: 'Registered tasks by name.' }),
  }),
);
export const MeprocOutput = meprocOk(Type.Record(Type.String(), Type.String({ format: 'byte' }), { description: "Output of each process of the latest start or cron run (`<name>:<replica>`), base64; empty for one that wrote nothing." }));

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
  execute_at: Type.String({ description: "When a delayed task runs (ISO time), else Go's zero time 0001-01-01T00:00:00Z, as Coyotes shows it." }),
  retry_count: Type.Integer(),
  failed_at: Type.String({ description: "When it failed (ISO time), else Go's zero time." }),
});
const CoyotesTasks = Type.Object({ tasks: Type.Array(CoyotesTask), count: Type.Integer() });

export const CoyotesChannelParams = Type.Object({ name: Type.String({ description: 'Channel (queue) name.' }) });
export const CoyotesTaskParams = Type.Object({ name: Type.String({ description: 'Channel (queue) name.' }), id: Type.String({ description: "Task id: the client's `id`, else the job id." }) });
export const CoyotesIdParams = Type.Object({ id: Type.String({ description: "Task id: the client's `id`, else the job id." }) });
/** Form fields (urlencoded or multipart) or the same as JSON. */
export const COYOTES_CONSUMES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'];

export const CoyotesChannelInput = Type.Object({
  name: Type.String({ description: 'Channel (queue) name.' }),
  distinct: Type.Optional(Type.String({ enum: ['true', 'false', '1', '0'], description: 'Drop a task whose command is already queued or running.' })),
  worker: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$', description: 'How many of its tasks run at once, across the runners that serve it (every runner with RUNNER_QUEUES=*, as under drover start).' })),
});
export const CoyotesTaskInput = Type.Object({
  task: Type.String({ minLength: 1, description: 'The task line: split on spaces and run without a shell, unless `command` is given.' }),
  command: Type.Optional(Type.String({ description: 'The program; `args` are its arguments.' })),
  args: Type.Optional(Type.Array(Type.String())),
  delay: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: 'Run after this many seconds.' })),
  id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$', description: "The task id (else the job id): answers show it and failed-task and delay-task routes take it; kept as label coyotes.id." })),
});

export const CoyotesOk = coyotesOk(Type.Null());
export const CoyotesChannels = coyotesOk(Type.Record(Type.String(), CoyotesTasks, { description: 'Unfinished tasks by channel.' }));
export const CoyotesChannel = coyotesOk(CoyotesTasks);
export const CoyotesDeleted = coyotesOk(Type.Object({ cancelled: Type.Integer({ description: 'Queued tasks dropped with the channel.' }) }));
export const CoyotesPushed = coyotesOk(Type.Object({ task_id: Type.String({ description: "The client's id, else the job id." }), task_name: Type.String(), result: Type.Boolean({ description: 'false: a duplicate in a distinct channel, not queued again.' }) }));
export const CoyotesOneTask = coyotesOk(CoyotesTask);
export const CoyotesTaskMap = coyotesOk(Type.Record(Type.String(), CoyotesTask, { description: 'Tasks by task id, as Coyotes lists failed and delayed tasks.' }));
