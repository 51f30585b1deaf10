import { parseRedisTarget } from './redis-target.js';
import { readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnvKey } from './env-cipher.js';
import { DroverError } from './errors.js';
import { parseNamespaceSelection, selectionProblems, type NamespaceSelection } from './model/namespace.js';
import { parseQueueSelection } from './model/queue-selection.js';
import { parseRunnerLabels } from './model/placement.js';
import { parseResourceMaximum, type JobResources } from './model/resources.js';
import { outboundAllowProblems } from './outbound.js';
import { webhookSecretProblem } from './webhook-signing.js';

/** Everything Drover reads from the environment, validated once and frozen. Durations are ms, sizes bytes. */
export interface DroverConfig {
  /**
   * `REDIS_URL` (or `REDIS_URL_FILE`), default `redis://127.0.0.1:6379`: the store, and the broker under BullMQ (Redis 7
   * or newer). `redis+cluster://host:port,host:port,...` for a Redis Cluster, `redis+sentinel://host:port,.../<name>`
   * for a primary watched by Redis Sentinel; `rediss` for TLS.
   */
  redisUrl: string;
  /** `DROVER_PREFIX`, default `drover`: every key lives under `{prefix}` so one hash tag covers them all. */
  prefix: string;
  /** `DROVER_BROKER`: `bullmq` (default) or `rabbitmq`. */
  broker: 'bullmq' | 'rabbitmq';
  /** `AMQP_URL` (or `AMQP_URL_FILE`), default `amqp://guest:guest@127.0.0.1:5672`: the RabbitMQ broker. */
  amqpUrl: string;
  /** `AMQP_QUEUE_TYPE`, default `quorum`: the type of queue declared per Drover queue. */
  amqpQueueType: 'quorum' | 'classic';
  /** `DROVER_HOST` / `DROVER_PORT`: where the API listens. Default 127.0.0.1:8606. */
  host: string;
  port: number;
  /**
   * `DROVER_PUBLIC_URL`: the URL clients reach the API at (behind a proxy or ingress, e.g. `https://drover.corp`);
   * the OpenAPI document's `servers`. Default: the address each request came to.
   */
  publicUrl: string | undefined;
  /** `DATABASE_URL` or `DATABASE_URL_FILE` (PostgreSQL): finished jobs are archived there and read through once Redis let them go. */
  databaseUrl: string | undefined;
  /** `DROVER_ADMIN_TOKEN` (or `DROVER_ADMIN_TOKEN_FILE`): a single admin token for the simple case, at least 16 characters. */
  adminToken: string | undefined;
  /** `DROVER_TOKENS_FILE`: JSON file with several tokens, their scopes and queues (mode 0600; see docs/security.md). */
  tokensFile: string | undefined;
  /**
   * `DROVER_POLICY_FILE`: per-queue command policy (docs/security.md), enforced by the API (403) and again by runners
   * right before the spawn.
   */
  policyFile: string | undefined;
  /** `DROVER_DATA_DIR`, default `.drover`: generated token and the all-in-one Redis live here. */
  dataDir: string;
  /** `DROVER_BODY_LIMIT`, default 1 MiB: largest accepted request body (413 above). */
  bodyLimitBytes: number;
  /**
   * `DROVER_RATE_LIMIT`, default 6000: requests per minute per token (per client address without one), however the
   * `Authorization` header is spelled; counted in Redis, so shared by API replicas. 0 turns it off.
   */
  rateLimitPerMinute: number;
  /**
   * `DROVER_AUTH_FAIL_LIMIT`, default 20: requests with a missing, malformed or unknown token allowed per minute per
   * client address; past it every authenticated request from that address answers 429 until the minute is over
   * (a correct guess included, so guessing stays bounded; probes stay open). 0 turns it off.
   */
  authFailLimitPerMinute: number;
  /**
   * `DROVER_MAX_JOBS_PER_REQUEST`, default 1000: jobs one request may create (batch items × replicas, workflow steps ×
   * replicas, one schedule fire); 400 above, nothing stored.
   */
  maxJobsPerRequest: number;
  /** `DROVER_MAX_STREAMS_PER_TOKEN`, default 20: SSE streams (events, log follow) one token may hold open at once, across API replicas (429 above). */
  maxStreamsPerToken: number;
  /** `DROVER_REQUEST_TIMEOUT_MS`, default 30000: a request must arrive whole within this (slow-client protection). */
  requestTimeoutMs: number;
  /**
   * `DROVER_METRICS_HOST` (default 127.0.0.1) / `DROVER_METRICS_PORT` (default 9464; `0` picks a free port, `off`
   * serves none): each process's own `/metrics`, `/healthz` and `/readyz` for Prometheus and probes. No token: keep it
   * on loopback or a private network. A port already taken is logged and skipped; the service keeps running.
   */
  metrics: { host: string; port: number | null };
  /** `DROVER_LOG_LEVEL`, default `info`: the least severe pino level written. */
  logLevel: string;
  /**
   * `DROVER_LOG_FORMAT`, default `auto`: `pretty` (one coloured line per event) when stdout is a terminal, JSON lines
   * otherwise; `json` or `pretty` to choose.
   */
  logFormat: 'auto' | 'json' | 'pretty';
  /** `DROVER_MAX_DELAY_MS`, default 30 days: the furthest ahead a job may be delayed (delayMs, runAt, triggers). */
  maxDelayMs: number;
  /** `DROVER_IDEMPOTENCY_TTL_MS`, default 24 h: how long an `Idempotency-Key` answers the submission it came with. */
  idempotencyTtlMs: number;
  /**
   * `DROVER_ENV_KEY` (or `DROVER_ENV_KEY_FILE`): 32 bytes (64 hex digits or base64). When set, the API and the
   * scheduler store env values AES-256-GCM sealed and only runners open them; every service needs the same key
   * (`openssl rand -base64 32`). Keep it: a value sealed with a lost key cannot be run.
   */
  envKey: Buffer | undefined;
  /** `DROVER_KILL_GRACE_MS`, default 5000: time between SIGTERM and SIGKILL of a job's process group. */
  killGraceMs: number;
  /**
   * Fault injection for the fault-tolerance tests, inert unless `DROVER_ENABLE_FAULT_HOOKS=1`:
   * `DROVER_FAULT_PUBLISH_DELAY_MS` holds each submission between persisting and publishing;
   * `DROVER_FAULT_NO_FENCING=1` makes runners let jobs run on past their unrenewed leases (to show a retry overlaps).
   */
  faults: { publishDelayMs: number; noFencing: boolean } | undefined;
  scripts: {
    /** `DROVER_MAX_SCRIPT_BYTES`, default 256 KiB: largest `script` a job may carry. */
    maxScriptBytes: number;
    /** `DROVER_MAX_FILES_BYTES`, default 1 MiB: total size of a job's `files`. */
    maxFilesBytes: number;
    /** `DROVER_SCRIPT_INTERPRETERS`, default `sh,bash,python3,node`: what may run a script (names looked up in PATH, or paths); API and runners read it. */
    interpreters: string[];
  };
  outbound: {
    /**
     * `DROVER_OUTBOUND_ALLOW`, comma separated, default none: host names (`hooks.corp`, `*.corp`), addresses and CIDR
     * ranges that job callbacks and webhooks may reach although they are not public (loopback, private, link-local);
     * everything else non-public is refused, at submit and again at connect. A laptop with a local receiver needs
     * `127.0.0.1` here.
     */
    allow: string[];
  };
  compat: {
    /**
     * `DROVER_COMPAT_OPEN=1`: Meproc's /proc and Coyotes' /channels answer without a token. Only with DROVER_HOST on
     * loopback (legacy single-box setups); the rest of the API keeps its tokens.
     */
    open: boolean;
    /** `DROVER_COMPAT_QUEUE`, default `default`: the queue Meproc tasks run in. */
    queue: string;
    /** `DROVER_COYOTES_LIST=1`: runners also take Coyotes tasks pushed (LPUSH, JSON) to the list DROVER_COYOTES_LIST_KEY names. */
    coyotesList: boolean;
    /**
     * `DROVER_COYOTES_LIST_KEY`, default `task:prepare:queue`: the exact Redis key of that list, outside DROVER_PREFIX
     * (the README's key Coyotes clients push to). Coyotes started with `-biz-name B` reads `B:task:prepare:queue`, and
     * without it (since 2018) `:task:prepare:queue`. Drover before this setting read `{<prefix>}:task:prepare:queue`.
     */
    coyotesListKey: string;
  };
  runner: {
    /** `RUNNER_ID`, default `<hostname>-<pid>`: the runner's identity in job records and the registry. */
    id: string;
    /**
     * `RUNNER_CGROUP`: `auto` (default: a cgroup per attempt wherever the runner may make one, cgroup v2 or v1
     * memory/pids/cpu), `off` (process group, subreaper and job uid only), or the directory of a delegated cgroup v2
     * subtree to make them in. The mode in use is the runner's `containment` (docs/containment.md).
     */
    cgroup: string;
    /**
     * `RUNNER_NAMESPACE`, comma separated, default `default` (`*` under `drover start`): the namespaces this runner
     * serves, or `*` for every one, those created later too. It takes RUNNER_QUEUES and RUNNER_CONCURRENCY in each
     * (docs/namespaces.md).
     */
    namespaces: NamespaceSelection;
    /**
     * `RUNNER_QUEUES`, comma separated, default `default` (`*` under `drover start`): queue names and patterns,
     * `*` for any run of characters, `!` before one to exclude it (`*,!heavy`: every queue but heavy, also new ones).
     */
    queues: string[];
    /**
     * `RUNNER_QUEUE_SCAN_MS`, default 2000: how often a runner with a pattern in RUNNER_QUEUES looks for new queues, and
     * every runner for jobs other runners declined that it satisfies the constraints of (a backstop: it is told at once).
     */
    queueScanMs: number;
    /**
     * `RUNNER_LABELS`, comma separated `key=value`, default none (`zone=a,gpu=1`): what jobs' `constraints.labels` are
     * matched against. The runner adds `host` (its host name) and `address` (its addresses: those of its non-internal
     * interfaces, loopback only when it has no other) itself; the registry (`GET /v1/runners`) shows them all.
     */
    labels: Record<string, string>;
    /** `RUNNER_CONCURRENCY`, default 5 (as Coyotes): jobs running at once in this runner, over all its queues. */
    concurrency: number;
    /** `RUNNER_DRAIN_TIMEOUT_MS`, default 30000: on SIGTERM, how long running jobs may finish before they are killed. */
    drainTimeoutMs: number;
    /** `RUNNER_LEASE_MS`, default 30000: a running job whose runner stops heartbeating is lost after this. */
    leaseMs: number;
    /**
     * `RUNNER_FENCE_MARGIN_MS`, default max(1000, leaseMs/5) but at most leaseMs/2: a runner that could not renew a
     * job's lease kills the job this long before the lease expires, so its retry elsewhere never overlaps it.
     */
    fenceMarginMs: number;
    /** `RUNNER_OUTPUT_CAP`, default 1 MiB: stored output per job (all attempts); the rest is dropped and `truncated` set. */
    outputCapBytes: number;
    /** `RUNNER_ENV_PASSTHROUGH`: runner variables a job inherits (everything else is withheld). */
    envPassthrough: string[];
    /**
     * `RUNNER_EXECUTOR`, default `auto`: `spawner` launches commands through the C helper (no fork of the runner),
     * `child_process` through Node, `auto` uses the helper when it was built and says so when it was not.
     */
    executor: 'auto' | 'spawner' | 'child_process';
    /** `RUNNER_SPAWNER_PATH`: the helper binary; default: the one `npm ci` built. */
    spawnerPath: string | undefined;
    /** `RUNNER_WORK_DIR`, default `<tmpdir>/drover-jobs`: each attempt gets a private directory here (its default cwd and TMPDIR); after the attempt its contents are removed (an empty one is taken back and kept for a later attempt under that attempt's name). */
    workDir: string;
    /** `RUNNER_MAX_OPEN_FILES`, default 0 (inherit): RLIMIT_NOFILE of every job (spawner helper). */
    maxOpenFiles: number;
    /** `RUNNER_MAX_MEMORY_MB`, default 0 (unlimited): RLIMIT_AS of every job, in MiB (spawner helper). */
    maxMemoryMb: number;
    /** `RUNNER_ALLOWED_USERS` / `RUNNER_ALLOWED_GROUPS`: the only users and groups a job may ask for (default none). */
    allowedUsers: string[];
    allowedGroups: string[];
    /**
     * `RUNNER_JOB_USER`: one user (name or uid in /etc/passwd) all jobs run as when they name none, e.g. `nobody`;
     * such jobs can read and signal each other. Unset: a uid per job (RUNNER_JOB_UIDS) when the runner can switch
     * users (root), else the runner's own user. `root` must be asked for by name. A runner whose job user does not
     * exist refuses to start.
     */
    jobUser: string | undefined;
    /**
     * `RUNNER_JOB_UIDS` (`first-last`): uids that belong to Drover's jobs alone. A runner that can switch users and
     * has no RUNNER_JOB_USER runs each job as a uid of its own from this range (default 2000000000-2000099999, the
     * runner's DEFAULT_JOB_UIDS). Never set together with RUNNER_JOB_USER. Each job gets the uid as its only group,
     * its job directory (0700) as HOME, USER/LOGNAME `drover-<uid>` and SHELL /bin/sh; there is no passwd entry.
     * The range must belong to Drover alone (every process of a uid is killed before and after each job): at least
     * RUNNER_CONCURRENCY uids, within 1000..2147483647, holding no user or group of /etc/passwd or /etc/group, mapped
     * in the runner's user namespace; else the runner refuses to start.
     */
    jobUids: UidRange | undefined;
    /**
     * `RUNNER_MAX_JOB_MEMORY_MB`, `RUNNER_MAX_JOB_CPUS`, `RUNNER_MAX_JOB_PIDS`, default 0 (none): the most one attempt
     * may use on this runner: memory of all its processes together (MiB), CPU as a share of cores (`1.5`), processes
     * and threads. Also the limit of a job that sets none (so no job here exceeds it); a job that asks for more fails
     * at once, without retries, naming the variable; a queue default above it is capped to it.
     */
    maxJobResources: JobResources;
  };
  scheduler: {
    /** `SCHEDULER_TICK_MS`, default 50: how often due delayed jobs and expired leases are checked. */
    tickMs: number;
    /** `SCHEDULER_REPUBLISH_AFTER_MS`, default 10000: a queued job not yet picked up from the outbox is republished after this; on RabbitMQ quorum queues, also one left waiting without a message (see [Priority](jobs.md#priority)). */
    republishAfterMs: number;
    /** `DROVER_EVENTS_RETENTION_MS`, default 1 day: events older than this are trimmed (the stream also keeps at most ~100k). */
    eventsRetentionMs: number;
    /**
     * `DROVER_RETENTION_FINISHED`, default 1 day (ms): finished jobs, their output and attempts are deleted from Redis
     * after this (with DATABASE_URL: only once archived).
     */
    retentionFinishedMs: number;
    /** `DROVER_RETENTION_MAX_PER_QUEUE`, default 100000: at most this many finished jobs kept per queue (oldest go first). */
    retentionMaxPerQueue: number;
    /** `DROVER_WEBHOOK_RETRY_BASE_MS`, default 1000: first retry delay of a failed webhook delivery (doubles, max 5 min). */
    webhookRetryBaseMs: number;
    /** `DROVER_WEBHOOK_MAX_AGE_MS`, default 1 h: a delivery still failing this long after its event is given up (`failed`). */
    webhookMaxAgeMs: number;
    /**
     * `DROVER_CALLBACK_SECRET` (or `DROVER_CALLBACK_SECRET_FILE`): signs jobs' `callbackUrl` deliveries; at least 16
     * characters, `whsec_<base64>` is decoded as Standard Webhooks does (`echo "whsec_$(openssl rand -base64 32)"`).
     * The scheduler refuses to start without it; `drover start` generates one.
     */
    callbackSecret: string | undefined;
    /**
     * `SCHEDULER_MISFIRE_THRESHOLD_MS`, default 60000: a cron fire handled later than this (no scheduler was running)
     * is a misfire, and the schedule's misfire policy decides. Later by less: it simply fires, late.
     */
    misfireThresholdMs: number;
  };
}

/** A range of uids, both ends included. */
export interface UidRange {
  first: number;
  last: number;
}

/** Uids below this belong to the system (root, daemons); job uids never go there. */
export const MIN_JOB_UID = 1000;
/** The highest job uid: Node's child_process (the runner's fallback executor) takes 31-bit ids only. */
export const MAX_JOB_UID = 2_147_483_647;

/** Parses `first-last` (RUNNER_JOB_UIDS); returns the problem in words when it is not a usable range. */
export function parseUidRange(text: string): UidRange | string {
  const m = /^\s*(\d{1,10})\s*-\s*(\d{1,10})\s*$/.exec(text);
  if (!m) return `must be a range of uids "first-last", e.g. 2000000000-2000099999 (got "${text}")`;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first > last) return `must start at or below its end (got ${first}-${last})`;
  if (first < MIN_JOB_UID) return `must start at ${MIN_JOB_UID} or above: uids below are the system's (got ${first}-${last})`;
  if (last > MAX_JOB_UID) return `must end at ${MAX_JOB_UID} or below (got ${first}-${last})`;
  return { first, last };
}

const DEFAULT_PASSTHROUGH = 'PATH,HOME,LANG,LC_ALL,TZ,USER,LOGNAME,SHELL,TMPDIR';

type Env = Readonly<Record<string, string | undefined>>;

/** Collects every problem so an operator fixes them all in one go. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string, fallback: string): string {
    const v = this.env[name];
    return v === undefined || v === '' ? fallback : v;
  }

  optional(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === '' ? undefined : v;
  }

  /**
   * A secret from `NAME`, or from the file `NAME_FILE` names (as container secrets are mounted), never both.
   * One trailing newline of the file is dropped. Problems name the variable and the file, never the value.
   */
  secret(name: string): string | undefined {
    const direct = this.optional(name);
    const file = this.optional(`${name}_FILE`);
    if (file === undefined) return direct;
    if (direct !== undefined) {
      this.problems.push(`${name} and ${name}_FILE are both set; set only one`);
      return undefined;
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      this.problems.push(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      return undefined;
    }
    const value = text.replace(/\r?\n$/, '');
    if (value === '') this.problems.push(`${name}_FILE: ${file} is empty`);
    return value === '' ? undefined : value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw.trim())) {
      this.problems.push(`${name} must be a whole number, got "${raw}"`);
      return fallback;
    }
    const n = Number(raw.trim());
    if (n < min || n > max) this.problems.push(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const v = this.string(name, fallback);
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')} (got "${v}")`);
    return fallback;
  }

  /** `1`/`true` or `0`/`false`; anything else is a problem. */
  bool(name: string, fallback: boolean): boolean {
    const v = this.optional(name);
    if (v === undefined) return fallback;
    if (v === '1' || v === 'true') return true;
    if (v === '0' || v === 'false') return false;
    this.problems.push(`${name} must be 1 or 0 (got "${v}")`);
    return fallback;
  }

  list(name: string, fallback: string): string[] {
    return this.string(name, fallback)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
}

function namespacesOf(r: EnvReader): NamespaceSelection {
  const sel = parseNamespaceSelection(r.list('RUNNER_NAMESPACE', 'default'));
  const problems = selectionProblems(sel);
  if (!problems) return sel as NamespaceSelection;
  for (const p of problems) r.problems.push(`RUNNER_NAMESPACE ${p}`);
  return ['default'];
}

/** A URL's scheme for an error message: the rest of a broker URL may hold its password. */
function schemeOf(url: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  return m ? `scheme "${m[1]}:"` : 'no scheme';
}

/**
 * The standard OpenTelemetry variables Drover's tracing honours (read by the OTel SDK itself, not by loadConfig).
 * Deployment files may set these besides the names loadConfig reads.
 */
export const OTEL_ENV_NAMES = [
  'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG', 'OTEL_TRACES_EXPORTER', 'OTEL_SDK_DISABLED', 'OTEL_BSP_SCHEDULE_DELAY',
] as const;

/** Every variable loadConfig reads (found by running it over an empty environment that records each lookup). */
export function configEnvNames(): string[] {
  const seen = new Set<string>(['DROVER_ENABLE_FAULT_HOOKS', 'DROVER_FAULT_PUBLISH_DELAY_MS']);
  const recorder: Env = new Proxy({}, {
    get: (_t, name) => {
      if (typeof name === 'string') seen.add(name);
      return undefined;
    },
  });
  loadConfig(recorder);
  return [...seen].sort();
}

function publicUrlOf(text: string | undefined, problems: string[]): string | undefined {
  if (text === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash || url.username || url.password) {
    problems.push(`DROVER_PUBLIC_URL must be an http:// or https:// URL without query, fragment or credentials (got "${text}")`);
    return undefined;
  }
  return text.replace(/\/+$/, '');
}

function envKeyOf(text: string | undefined, problems: string[]): Buffer | undefined {
  if (text === undefined) return undefined;
  const key = parseEnvKey(text);
  if (typeof key === 'string') problems.push(key);
  return typeof key === 'string' ? undefined : key;
}

function maxJobResourcesOf(r: EnvReader): JobResources {
  const out: JobResources = {};
  const read = (name: keyof JobResources, variable: string): void => {
    const v = parseResourceMaximum(name, r.optional(variable));
    if (typeof v === 'string') r.problems.push(v);
    else if (v !== undefined) out[name] = v;
  };
  read('memoryMb', 'RUNNER_MAX_JOB_MEMORY_MB');
  read('cpus', 'RUNNER_MAX_JOB_CPUS');
  read('pids', 'RUNNER_MAX_JOB_PIDS');
  return out;
}

/** Room for the kill (and some clock skew) before the lease expires, yet never more than half the lease. */
export function defaultFenceMarginMs(leaseMs: number): number {
  return Math.min(Math.floor(leaseMs / 2), Math.max(1000, Math.floor(leaseMs / 5)));
}

function runnerLabelsOf(r: EnvReader): Record<string, string> {
  const labels = parseRunnerLabels(r.list('RUNNER_LABELS', ''));
  if (!Array.isArray(labels)) return labels;
  for (const p of labels) r.problems.push(`RUNNER_LABELS ${p}`);
  return {};
}

/** A Redis key as Coyotes clients write it: printable, no spaces (they would be a different key in every client). */
function coyotesListKeyOf(r: EnvReader): string {
  const key = r.string('DROVER_COYOTES_LIST_KEY', 'task:prepare:queue');
  if (!/^[\x21-\x7e]{1,256}$/.test(key)) r.problems.push(`DROVER_COYOTES_LIST_KEY must be 1-256 printable characters without spaces; got ${JSON.stringify(key)}`);
  return key;
}

function jobUidsOf(r: EnvReader): UidRange | undefined {
  const text = r.optional('RUNNER_JOB_UIDS');
  if (text === undefined) return undefined;
  const range = parseUidRange(text);
  if (typeof range === 'string') r.problems.push(`RUNNER_JOB_UIDS ${range}`);
  return typeof range === 'string' ? undefined : range;
}

export function loadConfig(env: Env): Readonly<DroverConfig> {
  const r = new EnvReader(env);
  const redisUrl = r.secret('REDIS_URL') ?? 'redis://127.0.0.1:6379';
  const target = parseRedisTarget(redisUrl);
  // Never the URL itself in a problem: it may hold a password.
  if (target instanceof Error) r.problems.push(target.message.startsWith('REDIS_URL must') ? `${target.message}, got ${schemeOf(redisUrl)}` : target.message);
  const prefix = r.string('DROVER_PREFIX', 'drover');
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) r.problems.push(`DROVER_PREFIX may only hold letters, digits and _.:- (got "${prefix}")`);
  const broker = r.oneOf('DROVER_BROKER', ['bullmq', 'rabbitmq'] as const, 'bullmq');
  const amqpUrl = r.secret('AMQP_URL') ?? 'amqp://guest:guest@127.0.0.1:5672';
  if (!/^amqps?:\/\//.test(amqpUrl)) r.problems.push(`AMQP_URL must start with amqp:// or amqps://, got ${schemeOf(amqpUrl)}`);
  const queues = r.list('RUNNER_QUEUES', 'default');
  const selection = parseQueueSelection(queues);
  if (Array.isArray(selection)) for (const p of selection) r.problems.push(`RUNNER_QUEUES ${p}`);
  const leaseMs = r.int('RUNNER_LEASE_MS', 30_000, 1000, 3_600_000);
  const logLevel = r.oneOf('DROVER_LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info');

  const config: DroverConfig = {
    redisUrl,
    prefix,
    broker,
    amqpUrl,
    amqpQueueType: r.oneOf('AMQP_QUEUE_TYPE', ['quorum', 'classic'] as const, 'quorum'),
    host: r.string('DROVER_HOST', '127.0.0.1'),
    port: r.int('DROVER_PORT', 8606, 0, 65535),
    publicUrl: publicUrlOf(r.optional('DROVER_PUBLIC_URL'), r.problems),
    adminToken: r.secret('DROVER_ADMIN_TOKEN'),
    databaseUrl: r.secret('DATABASE_URL'),
    tokensFile: r.optional('DROVER_TOKENS_FILE'),
    dataDir: r.string('DROVER_DATA_DIR', '.drover'),
    policyFile: r.optional('DROVER_POLICY_FILE'),
    rateLimitPerMinute: r.int('DROVER_RATE_LIMIT', 6000, 0, 10_000_000),
    authFailLimitPerMinute: r.int('DROVER_AUTH_FAIL_LIMIT', 20, 0, 10_000_000),
    maxJobsPerRequest: r.int('DROVER_MAX_JOBS_PER_REQUEST', 1000, 1, 1_000_000),
    maxStreamsPerToken: r.int('DROVER_MAX_STREAMS_PER_TOKEN', 20, 1, 100_000),
    requestTimeoutMs: r.int('DROVER_REQUEST_TIMEOUT_MS', 30_000, 1000, 3_600_000),
    bodyLimitBytes: r.int('DROVER_BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    logLevel,
    metrics: {
      host: r.string('DROVER_METRICS_HOST', '127.0.0.1'),
      port: r.optional('DROVER_METRICS_PORT') === 'off' ? null : r.int('DROVER_METRICS_PORT', 9464, 0, 65535),
    },
    logFormat: r.oneOf('DROVER_LOG_FORMAT', ['auto', 'json', 'pretty'] as const, 'auto'),
    maxDelayMs: r.int('DROVER_MAX_DELAY_MS', 30 * 86_400_000, 0, 366 * 86_400_000),
    idempotencyTtlMs: r.int('DROVER_IDEMPOTENCY_TTL_MS', 86_400_000, 1000, 30 * 86_400_000),
    killGraceMs: r.int('DROVER_KILL_GRACE_MS', 5000, 0, 600_000),
    envKey: envKeyOf(r.secret('DROVER_ENV_KEY'), r.problems),
    scripts: {
      maxScriptBytes: r.int('DROVER_MAX_SCRIPT_BYTES', 256 * 1024, 1, 16 * 1024 * 1024),
      maxFilesBytes: r.int('DROVER_MAX_FILES_BYTES', 1024 * 1024, 0, 64 * 1024 * 1024),
      interpreters: r.list('DROVER_SCRIPT_INTERPRETERS', 'sh,bash,python3,node'),
    },
    outbound: { allow: r.list('DROVER_OUTBOUND_ALLOW', '') },
    compat: {
      open: r.bool('DROVER_COMPAT_OPEN', false),
      queue: r.string('DROVER_COMPAT_QUEUE', 'default'),
      coyotesList: r.bool('DROVER_COYOTES_LIST', false),
      coyotesListKey: coyotesListKeyOf(r),
    },
    faults: env.DROVER_ENABLE_FAULT_HOOKS === '1'
      ? { publishDelayMs: r.int('DROVER_FAULT_PUBLISH_DELAY_MS', 0, 0, 600_000), noFencing: r.bool('DROVER_FAULT_NO_FENCING', false) }
      : undefined,
    runner: {
      id: r.string('RUNNER_ID', `${hostname()}-${process.pid}`),
      namespaces: namespacesOf(r),
      queues,
      queueScanMs: r.int('RUNNER_QUEUE_SCAN_MS', 2000, 100, 600_000),
      labels: runnerLabelsOf(r),
      concurrency: r.int('RUNNER_CONCURRENCY', 5, 1, 10_000),
      drainTimeoutMs: r.int('RUNNER_DRAIN_TIMEOUT_MS', 30_000, 0, 86_400_000),
      leaseMs,
      fenceMarginMs: r.int('RUNNER_FENCE_MARGIN_MS', defaultFenceMarginMs(leaseMs), 1, 1_800_000),
      outputCapBytes: r.int('RUNNER_OUTPUT_CAP', 1024 * 1024, 0, 1024 * 1024 * 1024),
      envPassthrough: r.list('RUNNER_ENV_PASSTHROUGH', DEFAULT_PASSTHROUGH),
      executor: r.oneOf('RUNNER_EXECUTOR', ['auto', 'spawner', 'child_process'] as const, 'auto'),
      spawnerPath: r.optional('RUNNER_SPAWNER_PATH'),
      cgroup: r.string('RUNNER_CGROUP', 'auto'),
      workDir: r.string('RUNNER_WORK_DIR', join(tmpdir(), 'drover-jobs')),
      maxOpenFiles: r.int('RUNNER_MAX_OPEN_FILES', 0, 0, 1_048_576),
      maxMemoryMb: r.int('RUNNER_MAX_MEMORY_MB', 0, 0, 16 * 1024 * 1024),
      allowedUsers: r.list('RUNNER_ALLOWED_USERS', ''),
      allowedGroups: r.list('RUNNER_ALLOWED_GROUPS', ''),
      jobUser: r.optional('RUNNER_JOB_USER'),
      jobUids: jobUidsOf(r),
      maxJobResources: maxJobResourcesOf(r),
    },
    scheduler: {
      tickMs: r.int('SCHEDULER_TICK_MS', 50, 5, 60_000),
      republishAfterMs: r.int('SCHEDULER_REPUBLISH_AFTER_MS', 10_000, 100, 3_600_000),
      misfireThresholdMs: r.int('SCHEDULER_MISFIRE_THRESHOLD_MS', 60_000, 100, 86_400_000),
      retentionFinishedMs: r.int('DROVER_RETENTION_FINISHED', 86_400_000, 1000, 3650 * 86_400_000),
      retentionMaxPerQueue: r.int('DROVER_RETENTION_MAX_PER_QUEUE', 100_000, 1, 100_000_000),
      eventsRetentionMs: r.int('DROVER_EVENTS_RETENTION_MS', 86_400_000, 60_000, 90 * 86_400_000),
      webhookRetryBaseMs: r.int('DROVER_WEBHOOK_RETRY_BASE_MS', 1000, 10, 3_600_000),
      webhookMaxAgeMs: r.int('DROVER_WEBHOOK_MAX_AGE_MS', 3_600_000, 1000, 7 * 86_400_000),
      callbackSecret: r.secret('DROVER_CALLBACK_SECRET'),
    },
  };
  const { jobUids, jobUser, concurrency } = config.runner;
  const { cgroup } = config.runner;
  if (cgroup !== 'auto' && cgroup !== 'off' && !cgroup.startsWith('/')) {
    r.problems.push(`RUNNER_CGROUP must be auto, off or the absolute path of a delegated cgroup v2 directory, not "${cgroup}"`);
  }
  if (config.runner.fenceMarginMs * 2 > leaseMs) {
    r.problems.push(
      `RUNNER_FENCE_MARGIN_MS (${config.runner.fenceMarginMs}) is more than half of RUNNER_LEASE_MS (${leaseMs}): a job whose lease is not ` +
        'renewed within lease - margin is stopped, and leases are renewed three times in that window, so a larger margin renews too often to bear',
    );
  }
  if (jobUids && jobUser !== undefined) {
    r.problems.push('RUNNER_JOB_UIDS and RUNNER_JOB_USER are both set; set RUNNER_JOB_UIDS for a uid per job, or RUNNER_JOB_USER for one user shared by all jobs');
  }
  if (jobUids && jobUids.last - jobUids.first + 1 < concurrency) {
    r.problems.push(`RUNNER_JOB_UIDS ${jobUids.first}-${jobUids.last} holds ${jobUids.last - jobUids.first + 1} uids, fewer than RUNNER_CONCURRENCY (${concurrency}): every running job needs one`);
  }
  r.problems.push(...outboundAllowProblems(config.outbound.allow));
  const callbackSecretProblem = config.scheduler.callbackSecret === undefined ? null : webhookSecretProblem(config.scheduler.callbackSecret);
  if (callbackSecretProblem) r.problems.push(`DROVER_CALLBACK_SECRET ${callbackSecretProblem}`);
  if (config.compat.open && !['127.0.0.1', '::1', 'localhost'].includes(config.host)) {
    r.problems.push(`DROVER_COMPAT_OPEN=1 leaves /proc and /channels without authentication, so it needs DROVER_HOST on loopback; got ${config.host}`);
  }
  if (r.problems.length > 0) {
    throw new DroverError('CONFIG', `Invalid configuration:\n  - ${r.problems.join('\n  - ')}`, r.problems);
  }
  return Object.freeze(config);
}
