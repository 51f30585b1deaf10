import { JOB_ID_PATTERN, JOB_STATUSES, QueueName, Resources } from '@drover/core';
import { Type } from 'typebox';

/** Response and parameter schemas; request bodies come from @drover/core's job spec. */
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Time = Type.String({ format: 'date-time' });
const NullableTime = Type.Union([Time, Type.Null()]);
const NullableInt = Type.Union([Type.Integer(), Type.Null()]);

export const JobStatusSchema = Type.Union(JOB_STATUSES.map((s) => Type.Literal(s)));

export const JobIdParams = Type.Object({ id: Type.String({ pattern: JOB_ID_PATTERN, description: 'Job id (ULID).' }) }, { additionalProperties: false });

export const ErrorResponse = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }),
});

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
  script: Type.Union([Type.Object({ sha256: Type.String(), bytes: Type.Integer(), interpreter: Type.String() }), Type.Null()]),
  files: Type.Array(Type.Object({ path: Type.String(), bytes: Type.Integer() })),
  deduplicated: Type.Optional(Type.Boolean({ description: 'On submit: an unfinished job with the same dedupe key exists; this is it, nothing new was queued.' })),
  attemptHistory: Type.Optional(Type.Array(AttemptSchema)),
});

export const JobListQuery = Type.Object(
  {
    queue: Type.Optional(QueueName),
    status: Type.Optional(JobStatusSchema),
    label: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}=.{0,256}$', description: 'key=value: jobs with this label.' })),
    schedule: Type.Optional(Type.String({ maxLength: 64, description: 'Jobs a schedule fired.' })),
    exitCode: Type.Optional(Type.Integer({ minimum: -1, maximum: 255 })),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after.' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Created before.' })),
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
  runningJobs: Type.Array(Type.String()),
  upcoming: Type.Optional(Type.Array(Time, { description: 'The next 5 fire times.' })),
});
