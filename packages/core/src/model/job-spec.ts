import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { OUTBOUND_URL } from '../outbound.js';
import { Constraints, constraintProblems, normalizeConstraints, type JobConstraints } from './placement.js';
import { Resources, type JobResources } from './resources.js';

/**
 * What a client may submit. These schemas validate requests *and* generate the OpenAPI document, so the
 * docs cannot drift from what is enforced. Cross-field rules (command xor argv) live in `checkJobSpec`.
 */
export const QUEUE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
const ENV_KEY_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
const LABEL_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$';

/** Upper bound for one timeout or delay: 30 days. Larger values are almost always unit mistakes. */
export const MAX_DURATION_MS = 30 * 24 * 3600 * 1000;

/** Pause between a daemon's exit and its next start, unless the job says otherwise (Meproc's default). */
export const DEFAULT_DAEMON_INTERVAL_MS = 3000;

/** Lost attempts (runner died, shut down, fenced) a job is run again after, unless it says otherwise (BullMQ's stalled count). */
export const DEFAULT_MAX_LOST = 3;

/** Longest pause between a crash-looping daemon's runs, unless the job says otherwise (as Kubernetes' CrashLoopBackOff). */
export const DEFAULT_RESTART_BACKOFF_MAX_MS = 5 * 60 * 1000;

/** A daemon run this long (or as long as its backoff cap, if that is shorter) is stable: the backoff starts over. */
export const DAEMON_STABLE_RUN_MS = 60_000;

/** Schema ceiling for `script`; the configured limit (DROVER_MAX_SCRIPT_BYTES) is checked by the API. */
export const MAX_SCRIPT_SCHEMA_BYTES = 16 * 1024 * 1024;

/** Most copies one submission may ask for. */
export const MAX_REPLICAS = 64;

/**
 * Priorities: 1 (least urgent) to 10 (most urgent), 5 when not given. Of the jobs waiting in a queue, a more urgent
 * one starts first; equal ones start in the order they came.
 */
export const MIN_PRIORITY = 1;
export const MAX_PRIORITY = 10;
export const DEFAULT_PRIORITY = 5;

/** A job's priority (records older than the field have the default). */
export function priorityOf(spec: Pick<JobSpec, 'priority'>): number {
  return spec.priority ?? DEFAULT_PRIORITY;
}

export const QueueName = Type.String({ pattern: QUEUE_NAME_PATTERN, description: 'Queue name: letters, digits, `_ . -`, up to 64.' });

export const Backoff = Type.Object(
  {
    type: Type.Union([Type.Literal('fixed'), Type.Literal('exponential')], { default: 'exponential' }),
    delayMs: Type.Integer({ minimum: 0, maximum: MAX_DURATION_MS, description: 'First retry delay in ms.' }),
    maxDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_DURATION_MS, description: 'Cap for exponential growth, ms.' })),
  },
  { additionalProperties: false },
);

/** A job as a schedule or workflow holds it: everything about what to run, nothing about when. */
export const JobTemplate = Type.Object(
  {
    command: Type.Optional(Type.String({ minLength: 1, maxLength: 65536, description: 'Run by `/bin/sh -c`.' })),
    argv: Type.Optional(
      Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 4096, description: 'Executed directly, no shell.' }),
    ),
    queue: Type.Optional(QueueName),
    env: Type.Optional(
      Type.Record(Type.String({ pattern: ENV_KEY_PATTERN }), Type.String({ maxLength: 65536 }), {
        maxProperties: 256,
        additionalProperties: false,
        description: 'Extra environment for the command (string to string).',
      }),
    ),
    script: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_SCRIPT_SCHEMA_BYTES,
        description: 'A script shipped with the job, run by `interpreter` from a private file (size limit DROVER_MAX_SCRIPT_BYTES).',
      }),
    ),
    interpreter: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_./+-]{1,256}$', description: 'Runs `script`: one of DROVER_SCRIPT_INTERPRETERS (default sh).' }),
    ),
    files: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1, maxLength: 1024 }),
        Type.Union([Type.String(), Type.Object({ base64: Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' }) }, { additionalProperties: false })]),
        {
          maxProperties: 64,
          description: 'Files placed in the job\'s private directory (its cwd) before it starts: relative path -> text, or {base64}.',
        },
      ),
    ),
    stdin: Type.Optional(
      Type.Union([Type.String(), Type.Object({ base64: Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' }) }, { additionalProperties: false })], {
        description: "The command's standard input: text, or {base64} for any bytes (without it, stdin is /dev/null). Counted with `files` in DROVER_MAX_FILES_BYTES.",
      }),
    ),
    cwd: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'Working directory on the runner.' })),
    timeoutMs: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_DURATION_MS, description: 'Kill the process group after this many ms.' }),
    ),
    alertAfterMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_DURATION_MS,
        description: 'Warn, do not kill: once an attempt has run this long, a `job.slow` event (and webhook) says so and the record gets `slowAt`; the job keeps running (qschedule\'s `timeout`).',
      }),
    ),
    retries: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, description: 'Extra attempts after a failed or timed-out one (lost attempts have their own budget, `maxLost`).' }),
    ),
    backoff: Type.Optional(Backoff),
    onLost: Type.Optional(
      Type.Union([Type.Literal('retry'), Type.Literal('discard')], {
        description:
          'When an attempt is lost (its runner died, shut down, or stopped it because it could not renew the lease): ' +
          '`retry` (default) runs it again at once, up to `maxLost` times; `discard` ends the job `lost`.',
      }),
    ),
    maxLost: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100,
        description: `With onLost "retry": how many lost attempts are run again (default ${DEFAULT_MAX_LOST}), counted apart from \`retries\`. Not for daemons: they are started again after every loss.`,
      }),
    ),
    labels: Type.Optional(
      Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN }), Type.String({ maxLength: 256 }), { maxProperties: 32, additionalProperties: false }),
    ),
    user: Type.Optional(Type.String({ pattern: '^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$', description: 'Run as this user (name or uid); the runner must allow it (RUNNER_ALLOWED_USERS).' })),
    group: Type.Optional(Type.String({ pattern: '^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$', description: 'Run with this group (name or gid); the runner must allow it (RUNNER_ALLOWED_GROUPS).' })),
    args: Type.Optional(
      Type.Array(Type.String({ maxLength: 65536 }), {
        maxItems: 4096,
        description: 'Appended to `argv`; for a `command`, passed as its positional parameters ($1, $2, ...).',
      }),
    ),
    type: Type.Optional(
      Type.Union([Type.Literal('once'), Type.Literal('daemon')], {
        description: '`daemon`: started again `intervalMs` after every exit, whatever the outcome, until cancelled.',
      }),
    ),
    intervalMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_DURATION_MS,
        description: 'Pause before a daemon is started again (default 3000); doubled after each short run in a row, up to `restartBackoffMaxMs`.',
      }),
    ),
    restartBackoffMaxMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_DURATION_MS,
        description:
          `Daemons: the longest pause between runs (default ${DEFAULT_RESTART_BACKOFF_MAX_MS}). A run that lasted ${DAEMON_STABLE_RUN_MS / 1000} s, or this long if ` +
          'shorter, starts the backoff over at `intervalMs`. Equal to `intervalMs`: a fixed pause.',
      }),
    ),
    maxRestarts: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1_000_000,
        description: 'Daemons: after this many restarts (after its own exits; restarts after a lost run do not count) the daemon ends `failed`. Default: no limit.',
      }),
    ),
    replicas: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_REPLICAS, description: 'Run this many copies; each sees DROVER_REPLICA_INDEX and DROVER_REPLICAS.' }),
    ),
    dependsOn: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        maxItems: 64,
        uniqueItems: true,
        description:
          'Job ids that must succeed first (a failed or cancelled one cancels this job), or names (schedules, named jobs) ' +
          'whose unfinished jobs must end first; a name with nothing unfinished does not block.',
      }),
    ),
    name: Type.Optional(Type.String({ pattern: QUEUE_NAME_PATTERN, description: 'A name other jobs can wait for in `dependsOn`.' })),
    callbackUrl: Type.Optional(
      Type.String({
        format: 'uri',
        pattern: '^https?://',
        maxLength: 2048,
        [OUTBOUND_URL]: true,
        description:
          "POSTed the job's final event, signed with the callback secret (Standard Webhooks); retried like webhooks. " +
          'Must reach public addresses only, unless DROVER_OUTBOUND_ALLOW lists it. Never returned.',
      }),
    ),
    dedupeKey: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: 'While a job of this queue with the same key is unfinished, no new one is created.' }),
    ),
    resources: Type.Optional(Resources),
    constraints: Type.Optional(Constraints),
    ttlMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_DURATION_MS,
        description:
          'A deadline this many ms after the job is created: an attempt not started by then is not started, the job ends `expired` ' +
          '(retries included: no attempt starts late). Instead of `expiresAt`.',
      }),
    ),
    priority: Type.Optional(
      Type.Integer({
        minimum: MIN_PRIORITY,
        maximum: MAX_PRIORITY,
        description:
          `${MIN_PRIORITY} (least urgent) to ${MAX_PRIORITY} (most urgent), default ${DEFAULT_PRIORITY}: of the jobs waiting in a queue, more urgent ones ` +
          'start first, equal ones in the order they came, on both brokers (see docs/jobs.md).',
      }),
    ),
  },
  { additionalProperties: false },
);

export type JobTemplate = Static<typeof JobTemplate>;

/** A submitted job: a template plus, optionally, when to run it. */
export const JobSpecInput = Type.Object(
  {
    ...JobTemplate.properties,
    delayMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Run this many ms from now (bounded by DROVER_MAX_DELAY_MS).' })),
    runAt: Type.Optional(Type.String({ format: 'date-time', description: 'Run at this time (ISO 8601 with offset, e.g. 2026-05-01T09:00:00+02:00).' })),
    expiresAt: Type.Optional(
      Type.String({
        format: 'date-time',
        description: 'A deadline (ISO 8601, in the future): an attempt not started by then is not started, the job ends `expired`. Instead of `ttlMs`.',
      }),
    ),
  },
  { additionalProperties: false },
);

export type JobSpecInput = Static<typeof JobSpecInput>;
export type BackoffPolicy = Static<typeof Backoff>;

/** A validated, defaulted job specification: what the store keeps and the runner executes. */
export interface JobSpec {
  command?: string;
  argv?: string[];
  script?: string;
  interpreter?: string;
  /** sha256 (hex) of `script`, computed at submit: the record shows it instead of the body. */
  scriptSha256?: string;
  files?: Record<string, string | { base64: string }>;
  /** The command's standard input (else /dev/null). */
  stdin?: string | { base64: string };
  queue: string;
  env: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  alertAfterMs?: number;
  retries: number;
  backoff: BackoffPolicy;
  onLost: 'retry' | 'discard';
  /** Lost attempts run again with onLost "retry" (absent for daemons, and in records older than the field: DEFAULT_MAX_LOST). */
  maxLost?: number;
  labels: Record<string, string>;
  args?: string[];
  user?: string;
  group?: string;
  type?: 'daemon';
  intervalMs?: number;
  restartBackoffMaxMs?: number;
  maxRestarts?: number;
  replicas?: number;
  dependsOn?: string[];
  name?: string;
  dedupeKey?: string;
  callbackUrl?: string;
  /** Limits the job asked for; the runner fills the rest from its queue's default and its own maxima. */
  resources?: JobResources;
  /** Where it may run (normalized: canonical addresses, sorted labels); absent: anywhere. */
  constraints?: JobConstraints;
  /** The job's deadline is this long after its creation (the store keeps the time itself, see NewJob.expiresAt). */
  ttlMs?: number;
  /** MIN_PRIORITY..MAX_PRIORITY, higher is more urgent; absent: DEFAULT_PRIORITY. */
  priority?: number;
}

export interface SpecProblem {
  field: string;
  message: string;
}

const nulIn = (s: string): boolean => s.includes('\u0000');

/** Why `path` cannot be a file inside the job's directory (absolute, escaping with .., empty parts), or null. */
export function badRelativePath(path: string): string | null {
  if (nulIn(path)) return 'must not contain NUL';
  if (path.startsWith('/')) return 'must be relative to the job\'s directory';
  const parts = path.split('/');
  if (parts.some((p) => p === '..')) return 'must not leave the job\'s directory (..)';
  if (parts.some((p) => p === '' || p === '.')) return 'must not have empty or "." parts';
  return null;
}

/** Bytes a `files` map holds once decoded. */
export function filesBytes(files: Record<string, string | { base64: string }>): number {
  let n = 0;
  for (const v of Object.values(files)) n += typeof v === 'string' ? Buffer.byteLength(v) : Buffer.from(v.base64, 'base64').length;
  return n;
}

/** Rules a JSON schema cannot say clearly. Returns every problem, not just the first. */
export function checkJobSpec(input: JobTemplate & { delayMs?: number; runAt?: string; expiresAt?: string }): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (input.delayMs !== undefined && input.runAt !== undefined) {
    problems.push({ field: 'runAt', message: '"delayMs" and "runAt" are mutually exclusive' });
  }
  if (input.ttlMs !== undefined && input.expiresAt !== undefined) {
    problems.push({ field: 'expiresAt', message: '"ttlMs" and "expiresAt" are mutually exclusive' });
  }
  const given = (['command', 'argv', 'script'] as const).filter((f) => input[f] !== undefined);
  if (given.length === 0) problems.push({ field: 'command', message: 'one of "command", "argv" or "script" is required' });
  if (given.length > 1) problems.push({ field: given[1]!, message: `"${given.join('" and "')}" are mutually exclusive` });
  if (input.interpreter !== undefined && input.script === undefined) problems.push({ field: 'interpreter', message: 'only applies to "script"' });
  if (input.script !== undefined && nulIn(input.script)) problems.push({ field: 'script', message: 'must not contain NUL' });
  if (input.files !== undefined) {
    if (input.cwd !== undefined) problems.push({ field: 'files', message: 'files go to the job\'s private directory, its cwd: do not set "cwd" with them' });
    for (const path of Object.keys(input.files)) {
      const why = badRelativePath(path);
      if (why) problems.push({ field: `files/${path}`, message: why });
    }
  }
  for (const field of ['intervalMs', 'restartBackoffMaxMs', 'maxRestarts'] as const) {
    if (input[field] !== undefined && input.type !== 'daemon') problems.push({ field, message: 'only applies to type "daemon"' });
  }
  if (input.maxLost !== undefined) {
    if (input.type === 'daemon') problems.push({ field: 'maxLost', message: 'does not apply to type "daemon": a daemon is started again after every loss' });
    else if (input.onLost === 'discard') problems.push({ field: 'maxLost', message: 'only applies with onLost "retry"' });
  }
  if (input.argv?.[0] === '') problems.push({ field: 'argv/0', message: 'the program name must not be empty' });
  if (input.cwd !== undefined && !input.cwd.startsWith('/')) {
    problems.push({ field: 'cwd', message: 'must be an absolute path' });
  }
  const nul = (s: string): boolean => s.includes('\u0000');
  if (input.command !== undefined && nul(input.command)) problems.push({ field: 'command', message: 'must not contain NUL' });
  input.argv?.forEach((a, i) => nul(a) && problems.push({ field: `argv/${i}`, message: 'must not contain NUL' }));
  input.args?.forEach((a, i) => nul(a) && problems.push({ field: `args/${i}`, message: 'must not contain NUL' }));
  for (const [k, v] of Object.entries(input.env ?? {})) {
    if (nul(v)) problems.push({ field: `env/${k}`, message: 'must not contain NUL' });
  }
  problems.push(...constraintProblems(input.constraints));
  return problems;
}

export interface SpecDefaults {
  queue: string;
  retries: number;
  backoff: BackoffPolicy;
}

/** Defaults for fields a submitter leaves out: the same for the API, schedules and workflows. */
export const DEFAULT_SPEC_DEFAULTS: Readonly<SpecDefaults> = Object.freeze<SpecDefaults>({
  queue: 'default',
  retries: 0,
  backoff: { type: 'exponential', delayMs: 1000 },
});

export function normalizeJobSpec(input: JobTemplate, defaults: SpecDefaults): JobSpec {
  const spec: JobSpec = {
    queue: input.queue ?? defaults.queue,
    env: input.env ?? {},
    retries: input.retries ?? defaults.retries,
    backoff: input.backoff ?? defaults.backoff,
    onLost: input.onLost ?? 'retry',
    labels: input.labels ?? {},
  };
  if (input.command !== undefined) spec.command = input.command;
  if (input.argv !== undefined) spec.argv = input.argv;
  if (input.script !== undefined) {
    spec.script = input.script;
    spec.interpreter = input.interpreter ?? 'sh';
    spec.scriptSha256 = createHash('sha256').update(input.script).digest('hex');
  }
  if (input.files !== undefined && Object.keys(input.files).length > 0) spec.files = input.files;
  if (input.stdin !== undefined) spec.stdin = input.stdin;
  if (input.cwd !== undefined) spec.cwd = input.cwd;
  if (input.timeoutMs !== undefined) spec.timeoutMs = input.timeoutMs;
  if (input.alertAfterMs !== undefined) spec.alertAfterMs = input.alertAfterMs;
  if (input.args !== undefined && input.args.length > 0) spec.args = input.args;
  if (input.user !== undefined) spec.user = input.user;
  if (input.group !== undefined) spec.group = input.group;
  if (input.type === 'daemon') spec.type = 'daemon';
  else spec.maxLost = input.maxLost ?? DEFAULT_MAX_LOST;
  if (input.intervalMs !== undefined) spec.intervalMs = input.intervalMs;
  if (input.restartBackoffMaxMs !== undefined) spec.restartBackoffMaxMs = input.restartBackoffMaxMs;
  if (input.maxRestarts !== undefined) spec.maxRestarts = input.maxRestarts;
  if (input.replicas !== undefined && input.replicas > 1) spec.replicas = input.replicas;
  if (input.dependsOn !== undefined && input.dependsOn.length > 0) spec.dependsOn = input.dependsOn;
  if (input.name !== undefined) spec.name = input.name;
  if (input.dedupeKey !== undefined) spec.dedupeKey = input.dedupeKey;
  if (input.callbackUrl !== undefined) spec.callbackUrl = input.callbackUrl;
  if (input.resources !== undefined && Object.keys(input.resources).length > 0) spec.resources = input.resources;
  const constraints = normalizeConstraints(input.constraints);
  if (constraints) spec.constraints = constraints;
  if (input.priority !== undefined) spec.priority = input.priority;
  if (input.ttlMs !== undefined) spec.ttlMs = input.ttlMs;
  return spec;
}

/** Delay before attempt `nextAttempt` (2 = first retry). */
export function retryDelayMs(backoff: BackoffPolicy, nextAttempt: number): number {
  if (backoff.type === 'fixed') return backoff.delayMs;
  const raw = backoff.delayMs * 2 ** Math.max(0, nextAttempt - 2);
  return Math.min(raw, backoff.maxDelayMs ?? MAX_DURATION_MS);
}

/** The program and arguments a spec runs: a command goes through /bin/sh -c with `args` as $1, $2, ... */
export function specArgv(spec: Pick<JobSpec, 'command' | 'argv' | 'args'>): string[] {
  const args = spec.args ?? [];
  if (spec.command !== undefined) return ['/bin/sh', '-c', spec.command, 'sh', ...args];
  return [...(spec.argv ?? []), ...args];
}
