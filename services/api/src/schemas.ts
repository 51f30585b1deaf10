import { Constraints, JOB_ID_PATTERN, JOB_STATUSES, QueueName, Resources, STEP_STATUSES, WORKFLOW_STATUSES } from '@drover/core';
import { Type } from 'typebox';
import type { FastifyRequest } from 'fastify';

/** Response and parameter schemas; request bodies come from @drover/core's job spec. */
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const NullableTime = Type.Union([Time, Type.Null()]);
const NullableInt = Type.Union([Type.Integer(), Type.Null()]);

export const JobStatusSchema = Type.Union(JOB_STATUSES.map((s) => Type.Literal(s)));

export const JobIdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN, description: 'Job id (ULID).' }) }, { additionalProperties: false });

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable error code (VALIDATION, NOT_FOUND, UNAUTHORIZED, FORBIDDEN, CONFLICT, RATE_LIMITED, UNAVAILABLE, ...).' }),
      message: Type.String({ description: 'What went wrong, for a person.' }),
      details: Type.Optional(Type.Unknown({ description: 'For VALIDATION: a list of {field, message}.' })),
    }),
  },
  { description: 'Every error of the /v1 API: nothing was changed.' },
);

/** The error answers a route of the /v1 API can give, by status. */
export function errorResponses<C extends number>(...codes: C[]): Record<C, typeof ErrorResponse> {
  return Object.fromEntries(codes.map((c) => [c, ErrorResponse])) as Record<C, typeof ErrorResponse>;
}


export const AttemptSchema = Type.Object({
  attempt: Type.Integer(),
  runnerId: Type.String(),
  status: JobStatusSchema,
  exitCode: NullableInt,
  signal: Nullable(Type.String()),
  error: Nullable(Type.String()),
  startedAt: Time,
  finishedAt: Time,
});

export const JobRecordSchema = Type.Object({
  id: Type.String(),
  queue: Type.String(),
  status: JobStatusSchema,
  command: Nullable(Type.String()),
  argv: Type.Union([Type.Array(Type.String()), Type.Null()]),
  args: Type.Array(Type.String()),
  user: Nullable(Type.String()),
  group: Nullable(Type.String()),
  envKeys: Type.Array(Type.String(), { description: 'Names of the extra environment variables; values are never returned.' }),
  cwd: Nullable(Type.String()),
  timeoutMs: NullableInt,
  // Optional only for records archived before these fields existed.
  alertAfterMs: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'job.slow fires once an attempt has run this long; the job keeps running.' })),
  slowAt: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the latest job.slow alert fired (its event names the attempt).' })),
  retries: Type.Integer(),
  backoff: Type.Object({ type: Type.String(), delayMs: Type.Integer(), maxDelayMs: Type.Optional(Type.Integer()) }),
  onLost: Type.String(),
  // Optional only for records archived before these fields existed.
  maxLost: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'Lost attempts run again with onLost "retry" (null for a daemon: restarted after every loss).' })),
  lostCount: Type.Optional(Type.Integer({ description: 'Attempts lost so far (runner died, shut down, or fenced): the budget of maxLost.' })),
  failureCount: Type.Optional(Type.Integer({ description: 'Attempts failed or timed out so far: the budget of retries.' })),
  labels: Type.Record(Type.String(), Type.String()),
  attempts: Type.Integer({ description: 'Attempts started so far.' }),
  runnerId: Nullable(Type.String()),
  pid: NullableInt,
  exitCode: NullableInt,
  signal: Nullable(Type.String()),
  error: Nullable(Type.String()),
  createdAt: Time,
  queuedAt: NullableTime,
  runAt: NullableTime,
  claimedAt: NullableTime,
  startedAt: NullableTime,
  finishedAt: NullableTime,
  outputBytes: Type.Integer(),
  truncated: Type.Boolean(),
  // Optional only for records archived before these fields existed.
  progress: Type.Optional(Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.Null()], { description: 'How far the job says it is, 0..100 (a `::drover progress N` line on stdout, or its DROVER_PROGRESS_FILE); null: it did not say.' })),
  result: Type.Optional(Type.Unknown({ description: 'The JSON result the job reported (a `::drover result <json>` line on stdout, or its DROVER_RESULT_FILE; at most 64 KiB); null: none.' })),
  cancelRequested: Type.Boolean(),
  usage: Type.Union([
    Type.Object(
      {
        userCpuMs: Type.Number(),
        systemCpuMs: Type.Number(),
        maxRssKb: Type.Integer({ description: 'Peak resident set of the largest single process.' }),
        peakMemoryBytes: Type.Optional(Type.Integer({ description: "Peak memory of the whole attempt, every process counted (from its cgroup; absent without one)." })),
        cpuMs: Type.Optional(Type.Number({ description: 'CPU time of the whole attempt, every process counted (from its cgroup; absent without one).' })),
      },
      { description: 'CPU time and peak memory of the last attempt.' },
    ),
    Type.Null(),
  ]),
  resources: Type.Optional(
    Type.Union([Resources, Type.Null()], { description: "The limits the job asked for; its attempts get the queue's default and the runner's maximum for the others." }),
  ),
  schedule: Nullable(Type.String()),
  scheduledFor: NullableTime,
  type: Type.Union([Type.Literal('once'), Type.Literal('daemon')]),
  intervalMs: NullableInt,
  restartBackoffMaxMs: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'Daemons: the longest pause between runs of a crash loop.' })),
  maxRestarts: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'Daemons: restarts after which it ends `failed` (null: no limit).' })),
  restarts: Type.Optional(Type.Integer({ description: 'Daemons: restarts so far after its own exits (restarts after a lost run are not counted).' })),
  replicas: Type.Integer({ description: 'Copies of the command submitted together (1 = a single job).' }),
  replica: Type.Integer({ description: 'This copy: 0 .. replicas-1.' }),
  replicaOf: Nullable(Type.String({ description: 'Id of copy 0, shared by all copies.' })),
  replicaJobs: Type.Optional(Type.Array(Type.String(), { description: 'On submit: the ids of all copies.' })),
  dependsOn: Type.Array(Type.String()),
  name: Nullable(Type.String()),
  dedupeKey: Nullable(Type.String()),
  // Optional only for records archived before the field existed.
  priority: Type.Optional(Type.Integer({ description: '1 (least urgent) to 10 (most urgent); 5 unless the job set it.' })),
  expiresAt: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'The deadline: an attempt not started by then is not started, the job ends `expired`.' })),
  script: Type.Union([Type.Object({ sha256: Type.String(), bytes: Type.Integer(), interpreter: Type.String() }), Type.Null()]),
  files: Type.Array(Type.Object({ path: Type.String(), bytes: Type.Integer() })),
  // Optional only for records archived before these fields existed.
  constraints: Type.Optional(Type.Union([Constraints, Type.Null()], { description: 'Where it may run; null: on any runner of its queue.' })),
  placement: Type.Optional(
    Type.Union(
      [
        Type.Object({
          waitingSince: Time,
          declinedBy: Nullable(Type.String({ description: 'The last runner that declined it.' })),
          declines: Type.Integer({ description: 'Deliveries to runners that do not satisfy its constraints while it waited.' }),
          reason: Type.String(),
        }),
        Type.Null(),
      ],
      { description: 'Set while a queued job waits for a runner that satisfies its constraints; null otherwise.' },
    ),
  ),
  deduplicated: Type.Optional(Type.Boolean({ description: 'On submit: an unfinished job with the same dedupe key exists; this is it, nothing new was queued.' })),
  attemptHistory: Type.Optional(Type.Array(AttemptSchema)),
});

const LabelFilter = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}=.{0,256}$' });

export const JobListQuery = Type.Object(
  {
    queue: Type.Optional(QueueName),
    status: Type.Optional(JobStatusSchema),
    label: Type.Optional(
      Type.Union([LabelFilter, Type.Array(LabelFilter, { minItems: 1, maxItems: 16 })], { description: 'key=value: jobs with this label; repeat it (up to 16) for jobs with all of them.' }),
    ),
    schedule: Type.Optional(Type.String({ maxLength: 64, description: 'Jobs a schedule fired.' })),
    exitCode: Type.Optional(Type.Integer({ minimum: -1, maximum: 255 })),
    runner: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Jobs whose latest attempt ran (or runs) on this runner.' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Jobs of this name.' })),
    command: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Jobs whose command (an argv job: its argv joined by spaces) contains this text (case-sensitive).' })),
    createdAfter: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after.' })),
    createdBefore: Type.Optional(Type.String({ format: 'date-time', description: 'Created before.' })),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after (the older name of createdAfter).' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Created before (the older name of createdBefore).' })),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  },
  { additionalProperties: false },
);

export const LogQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 })),
    follow: Type.Optional(
      Type.Union(['1', '0', 'true', 'false'].map((v) => Type.Literal(v)), {
        description: 'With Accept: text/event-stream: stream lines live until the job ends (SSE `line` events, then `end`).',
      }),
    ),
    format: Type.Optional(
      Type.Literal('text', {
        description: 'text: the whole output of every attempt as text/plain (streamed; stdout and stderr as written, a `--- attempt N of M: status ---` line before each attempt; cursor and limit do not apply).',
      }),
    ),
  },
  { additionalProperties: false },
);

export const LogPage = Type.Object({
  items: Type.Array(
    Type.Object({
      id: Type.String(),
      stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr'), Type.Literal('system')]),
      line: Type.String(),
      ts: Time,
      attempt: Type.Integer(),
      partial: Type.Optional(Type.Literal(true, { description: 'No newline followed this piece in the output (its last bytes, or a piece of a very long line).' })),
    }),
  ),
  nextCursor: Nullable(Type.String()),
  done: Type.Boolean({ description: 'The job has finished and every line up to here was returned.' }),
  truncated: Type.Boolean(),
});

export const JobPage = Type.Object({ items: Type.Array(JobRecordSchema), nextCursor: Nullable(Type.String()) });

export const ScheduleRecordSchema = Type.Object({
  name: Type.String(),
  cron: Type.String(),
  timezone: Type.String(),
  job: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'The job template, as given.' })),
  workflow: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Instead of job: the workflow each fire runs.' })),
  overlap: Type.String(),
  misfire: Type.String(),
  enabled: Type.Boolean(),
  description: Type.String(),
  alertAfterFailures: NullableInt,
  createdAt: Time,
  updatedAt: Time,
  nextRunAt: NullableTime,
  lastRunAt: NullableTime,
  lastJobId: Nullable(Type.String()),
  lastState: Nullable(Type.String()),
  lastDurationMs: NullableInt,
  consecutiveFailures: Type.Integer(),
  lastMisfireAt: NullableTime,
  lastSkippedAt: Type.Optional(NullableTime),
  runningJobs: Type.Array(Type.String()),
  upcoming: Type.Optional(Type.Array(Time, { description: 'The next 5 fire times; none while disabled.' })),
  jitterMs: Type.Optional(Type.Integer({ description: 'Each fire\'s jobs start after a random delay up to this (ms).' })),
  startAt: Type.Optional(Time),
  endAt: Type.Optional(Time),
  excludeDates: Type.Optional(Type.Array(Type.String(), { description: 'Local dates (YYYY-MM-DD) it does not fire on.' })),
  calendar: Type.Optional(Type.String({ description: 'A calendar (GET /v1/calendars) whose dates it does not fire on.' })),
  lastRunner: Type.Optional(Nullable(Type.String({ description: 'The runner that took the last run\'s job (once one did).' }))),
  lastRunnerHost: Type.Optional(Nullable(Type.String({ description: 'That runner\'s host, while the registry remembers it.' }))),
});

/** A fire time that made no job. */
export const UnfiredRunSchema = Type.Object({
  state: Type.Union([Type.Literal('skipped'), Type.Literal('misfired')], { description: '`skipped`: a run was still going (overlap=skip); `misfired`: no scheduler ran at the time.' }),
  scheduledFor: Time,
  recordedAt: Time,
  missed: Type.Optional(Type.Integer({ description: 'misfired: how many fire times were missed.' })),
  fired: Type.Optional(Type.Boolean({ description: 'misfired: whether run-once fired one job for them.' })),
  runningJobs: Type.Optional(Type.Array(Type.String(), { description: 'skipped: the runs still going.' })),
});

/** An unfired fire time among a schedule's runs: `kind: "unfired"`, `status` its state. */
export const UnfiredRunItemSchema = Type.Intersect([
  Type.Object({ kind: Type.Literal('unfired'), status: Type.Union([Type.Literal('skipped'), Type.Literal('misfired')]) }),
  UnfiredRunSchema,
]);

/** A named set of dates schedules may exclude (`calendar`). */
export const CalendarSchema = Type.Object({ name: Type.String(), dates: Type.Array(Type.String()), updatedAt: Time });

/** `{items, nextCursor}`: pass nextCursor back as `cursor` for the next page; null at the end. */
export const pageOf = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Object({ items: Type.Array(item), nextCursor: Nullable(Type.String()) });
export const listOf = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Object({ items: Type.Array(item) });

const Status = <T extends readonly string[]>(values: T, description: string) => Type.Union(values.map((v) => Type.Literal(v)), { description });

export const StepViewSchema = Type.Object({
  name: Type.String(),
  dependsOn: Type.Array(Type.String()),
  status: Status(STEP_STATUSES, 'The step from its jobs: a job status (`expired`: its deadline passed before it started), `skipped` (a dependency failed) or `purged` (its jobs passed retention and were deleted).'),
  state: Type.Union(STEP_STATUSES.map((v) => Type.Literal(v)), { deprecated: true, description: 'Deprecated alias of `status`, removed in the next release.' }),
  jobId: Nullable(Type.String({ description: 'The job of copy 0.' })),
  jobIds: Type.Array(Type.String()),
  attempts: Type.Integer(),
  startedAt: NullableTime,
  finishedAt: NullableTime,
  exitCode: NullableInt,
  error: Nullable(Type.String()),
});

export const WorkflowViewSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Status(WORKFLOW_STATUSES, 'running while a step is unfinished; else succeeded, failed (a step failed, timed out, was lost or expired), cancelled, or purged (jobs passed retention).'),
  state: Type.Union(WORKFLOW_STATUSES.map((v) => Type.Literal(v)), { deprecated: true, description: 'Deprecated alias of `status`, removed in the next release.' }),
  run: Type.Integer({ description: 'Runs so far (1 + restarts).' }),
  concurrency: NullableInt,
  schedule: Nullable(Type.String({ description: 'The schedule that started it.' })),
  createdAt: Time,
  steps: Type.Array(StepViewSchema),
  runs: Type.Array(
    Type.Object({
      run: Type.Integer(),
      mode: Type.Union(['start', 'whole', 'failed', 'steps'].map((m) => Type.Literal(m))),
      at: Time,
      steps: Type.Record(Type.String(), Type.Array(Type.String()), { description: 'The steps this run started, with their job ids.' }),
    }),
  ),
});

const QueueSettingsSchema = Type.Object(
  {
    concurrency: NullableInt,
    rateLimit: Type.Union([Type.Object({ max: Type.Integer(), perMs: Type.Integer() }), Type.Null()]),
    dedupe: Type.Boolean(),
    paused: Type.Boolean(),
    defaultTimeoutMs: NullableInt,
    resources: Type.Optional(Resources),
  },
  { additionalProperties: true },
);

export const QueueViewSchema = Type.Object(
  {
    name: Type.String(),
    settings: QueueSettingsSchema,
    counts: Type.Object(
      {
        waiting: Type.Integer(),
        delayed: Type.Integer(),
        queued: Type.Integer(),
        parked: Type.Integer({ description: 'Queued jobs held back by the queue settings (paused, concurrency, rate).' }),
        running: Type.Integer(),
        lastHour: Type.Record(Type.String(), Type.Integer(), { description: 'Jobs finished in the last hour, by status.' }),
      },
      { additionalProperties: true },
    ),
    running: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          command: Nullable(Type.String()),
          argv: Type.Union([Type.Array(Type.String()), Type.Null()]),
          runnerId: Nullable(Type.String()),
          pid: NullableInt,
          startedAt: NullableTime,
          attempts: Type.Integer(),
        },
        { additionalProperties: true },
      ),
    ),
    oldestQueuedAt: Nullable(Type.String({ format: 'date-time', description: 'When the longest-waiting queued job was queued.' })),
  },
  { additionalProperties: true },
);

export const RunnerViewSchema = Type.Object(
  {
    id: Type.String(),
    host: Nullable(Type.String()),
    addresses: Type.Array(Type.String(), { description: 'Its addresses (non-internal interfaces; loopback only without any): `constraints.host` matches these too.' }),
    labels: Type.Record(Type.String(), Type.String(), { description: 'RUNNER_LABELS plus `host` and `address`: what `constraints.labels` must find.' }),
    pid: NullableInt,
    version: Nullable(Type.String()),
    queues: Type.Array(Type.String()),
    concurrency: NullableInt,
    executor: Nullable(Type.String()),
    containment: Nullable(Type.String({ description: 'How its jobs are held together: cgroup2, process-group+subreaper, ...' })),
    maxJobResources: Type.Record(Type.String(), Type.Number(), { description: 'RUNNER_MAX_JOB_*: the most one attempt may use; {} for no maximum.' }),
    running: Type.Array(Type.String(), { description: 'Ids of the jobs it runs now (a restricted token sees its own queues\' only).' }),
    startedAt: NullableTime,
    lastHeartbeatAt: Time,
    state: Type.Union(['running', 'draining', 'offline'].map((s) => Type.Literal(s)), { description: 'The runner process, not a job: running, draining or offline.' }),
    drainRequested: Type.Boolean(),
    loopDelayP99Ms: Type.Union([Type.Number(), Type.Null()]),
  },
  { additionalProperties: true },
);

/** A webhook subscription as shown after its creation (no secret). */
export const WebhookSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String(), { description: 'Empty: every event.' }),
  queues: Type.Array(Type.String(), { description: 'Empty: every queue.' }),
  enabled: Type.Boolean(),
  description: Type.String(),
  createdAt: Time,
});
export const WebhookCreatedSchema = Type.Object({ ...WebhookSchema.properties, secret: Type.String({ description: 'The signing secret, shown this once.' }) });

export const EventSchema = Type.Object({
  id: Type.String({ description: 'Stream id: monotonic; the Last-Event-ID (or `after`) to resume from.' }),
  type: Type.String({ description: 'job.submitted, job.started, job.slow, job.succeeded, job.failed, job.timed_out, job.cancelled, job.lost, job.expired, job.retried, job.progress, schedule.*, runner.*' }),
  ts: Time,
  jobId: Nullable(Type.String()),
  queue: Nullable(Type.String()),
  data: Type.Record(Type.String(), Type.Unknown()),
});

/**
 * For routes whose body is optional (every field of it is): a request without one (`curl -X POST`, no
 * content-type) means `{}`, rather than failing validation with "body: must be object".
 */
export async function noBodyIsEmpty(request: FastifyRequest): Promise<void> {
  request.body ??= {};
}

/** What a bulk action did: how many jobs, and which (the first MAX_AFFECTED_IDS of them). */
export const JobsAffected = Type.Object({
  count: Type.Integer({ minimum: 0, description: 'How many jobs it acted on.' }),
  ids: Type.Array(Type.String(), { description: 'Their ids (at most 1000; see idsTruncated).' }),
  idsTruncated: Type.Boolean({ description: 'True when there were more than ids lists.' }),
});

/** Most ids a bulk action lists in its answer (count says how many there were). */
export const MAX_AFFECTED_IDS = 1000;

/** The answer of a bulk action whose ids may be many. */
export function affected(ids: readonly string[]): { count: number; ids: string[]; idsTruncated: boolean } {
  return { count: ids.length, ids: ids.slice(0, MAX_AFFECTED_IDS), idsTruncated: ids.length > MAX_AFFECTED_IDS };
}

export const CancelQuery = Type.Object(
  { group: Type.Optional(Type.Union(['1', '0', 'true', 'false'].map((v) => Type.Literal(v)), { description: 'Cancel every copy of the job\'s replicas.' })) },
  { additionalProperties: false },
);

/** POST /v1/jobs/:id/cancel?group=1: what became of the group's copies. */
export const GroupCancelled = Type.Object({
  group: Type.String({ description: 'Copy 0\'s id: the group\'s.' }),
  cancelled: Type.Array(Type.String(), { description: 'Copies cancelled (waiting ones at once, running ones stopped by their runner).' }),
  stopping: Type.Array(Type.String(), { description: 'Running copies still stopping when the wait (the kill grace) ran out (202).' }),
});
