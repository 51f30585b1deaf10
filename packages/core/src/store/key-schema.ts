/**
 * The Redis schema: every key Drover writes, in one place. A name is a pattern below the deployment's hash tag
 * (`{<prefix>}:`), `{x}` standing for a part given when the name is built. TypeScript builds names with `keyName`
 * (and the `Keys` methods on it); the Lua scripts with `K.<kind>(...)`, functions the loader generates from this
 * table (lua-loader.ts). Renaming or adding a key is one edit here.
 *
 * Each entry: the name pattern, its Redis type, who writes it, and how long it lives.
 */
export const KEY_SCHEMA = {
  // Every script call's KEYS[1]: its name carries the hash tag, so a cluster client routes the call to the slot all
  // of the deployment's keys are in, and matches the ACL pattern `~{prefix}:*` the shipped Redis users are given.
  routing: { name: 'routing', type: 'none (never written)', owner: 'every script call (KEYS[1])', life: 'never written' },
  // Jobs
  job: { name: 'job:{id}', type: 'hash', owner: 'job scripts', life: 'until retention deletes the finished job (DROVER_RETENTION_FINISHED)' },
  jobLog: { name: 'job:{id}:log', type: 'stream', owner: 'runner (log-store)', life: 'with its job' },
  jobAttempts: { name: 'job:{id}:attempts', type: 'list', owner: 'finish script (attempts the job went on after; the last one is the record), lease expiry', life: 'with its job; the last ATTEMPTS_KEPT entries' },
  jobDependents: { name: 'job:{id}:dependents', type: 'set', owner: 'create script', life: 'until the job ends (its dependents are told)' },
  indexAll: { name: 'idx:all', type: 'zset', owner: 'job scripts', life: 'permanent; members leave with their jobs' },
  indexQueue: { name: 'idx:q:{queue}', type: 'zset', owner: 'job scripts', life: 'while the queue has jobs' },
  indexStatus: { name: 'idx:s:{status}', type: 'zset', owner: 'job scripts (move)', life: 'while jobs have the status' },
  indexQueueStatus: { name: 'idx:qs:{queue}:{status}', type: 'zset', owner: 'job scripts (move)', life: 'while the queue has jobs of the status' },
  delayed: { name: 'delayed', type: 'zset', owner: 'job scripts', life: 'members until due (score: runAt)' },
  outbox: { name: 'outbox', type: 'zset', owner: 'job scripts; publishers remove confirmed ones', life: 'members until the broker confirmed them' },
  ready: { name: 'ready', type: 'list', owner: 'job scripts; the scheduler pops it', life: 'members until published' },
  leases: { name: 'leases', type: 'zset', owner: 'claim, renew', life: 'members while running (score: lease end)' },
  expiring: { name: 'expiring', type: 'zset', owner: 'job scripts', life: 'members until started or past their deadline' },
  finished: { name: 'finished', type: 'zset', owner: 'job scripts (endJob)', life: 'members until retention (score: finishedAt)' },
  named: { name: 'named:{name}', type: 'set', owner: 'job scripts', life: 'unfinished jobs of a name' },
  claimedWith: { name: 'claimed-with:{token}', type: 'string', owner: 'claim (store order)', life: '60 s: a replayed claim finds its job' },
  idempotency: { name: 'idem:{digest}', type: 'string', owner: 'create, schedule trigger', life: 'the Idempotency-Key TTL' },
  owned: { name: 'owned:{principal}', type: 'zset', owner: 'API (job quota)', life: "a token's unfinished jobs" },
  events: { name: 'events', type: 'stream', owner: 'every script (emit); event store', life: 'capped at EVENTS_MAX_LEN and DROVER_EVENTS_RETENTION_MS' },
  control: { name: 'control', type: 'pubsub channel', owner: 'API, scripts', life: 'messages only' },
  // Queues
  queues: { name: 'queues', type: 'set', owner: 'create script, queue store', life: 'permanent' },
  queueConfig: { name: 'qcfg:{queue}', type: 'hash', owner: 'queue store (PUT /v1/queues/:name)', life: 'permanent' },
  queueWaiting: { name: 'q:{queue}:waiting', type: 'zset', owner: 'job scripts', life: 'queued jobs with a message on the way (score: priority, then time)' },
  queueParked: { name: 'q:{queue}:parked', type: 'zset', owner: 'claim, release-parked', life: 'jobs held by the queue settings' },
  queueReleasing: { name: 'q:{queue}:releasing', type: 'zset', owner: 'release-parked, claim', life: 'released jobs, 10 s' },
  queueStarts: { name: 'q:{queue}:starts', type: 'zset', owner: 'claim', life: 'starts within the rate window' },
  queueFinished: { name: 'q:{queue}:finished', type: 'zset', owner: 'job scripts (endJob)', life: 'members until retention' },
  queueDedupe: { name: 'q:{queue}:dedupe', type: 'hash', owner: 'create script', life: 'dedupe key -> unfinished job' },
  queueDone: { name: 'q:{queue}:done:{minute}', type: 'hash', owner: 'job scripts (endJob)', life: '61 minutes' },
  parkedQueues: { name: 'parked-queues', type: 'set', owner: 'claim, release-parked', life: 'queues holding parked jobs' },
  placements: { name: 'placements', type: 'hash', owner: 'claim, placed', life: 'placement groups with jobs' },
  placementGroup: { name: 'placement:{group}', type: 'zset', owner: 'claim, placed', life: 'declined jobs of the group' },
  // Workflows
  workflow: { name: 'wf:{id}', type: 'hash', owner: 'workflow store, create', life: 'until its jobs are gone' },
  workflowRunning: { name: 'wf:{id}:running', type: 'set', owner: 'claim, job scripts', life: 'running steps of a workflow with a concurrency' },
  workflowParked: { name: 'wf:{id}:parked', type: 'zset', owner: 'claim, job scripts', life: 'steps held by the workflow concurrency' },
  workflowIndex: { name: 'wf:idx', type: 'zset', owner: 'workflow store, create', life: 'permanent' },
  // Schedules
  schedule: { name: 'sched:{name}', type: 'hash', owner: 'schedule scripts', life: 'until deleted' },
  scheduleRunning: { name: 'sched:{name}:running', type: 'set', owner: 'schedule scripts, endJob', life: 'its unfinished jobs' },
  scheduleRuns: { name: 'sched:{name}:runs', type: 'zset', owner: 'schedule scripts', life: 'its jobs, until retention' },
  scheduleUnfired: { name: 'sched:{name}:unfired', type: 'list', owner: 'schedule fire', life: 'the last UNFIRED_MAX skips and misfires' },
  schedules: { name: 'schedules', type: 'zset', owner: 'schedule scripts', life: 'permanent' },
  schedulesDue: { name: 'sched-due', type: 'zset', owner: 'schedule scripts', life: 'enabled schedules (score: next fire)' },
  calendars: { name: 'calendars', type: 'hash', owner: 'schedule store', life: 'permanent' },
  // Webhooks
  webhooks: { name: 'wh:subs', type: 'hash', owner: 'webhook store', life: 'permanent' },
  webhooksVersion: { name: 'wh:subs:version', type: 'string', owner: 'webhook store', life: 'permanent' },
  delivery: { name: 'wh:d:{id}', type: 'hash', owner: 'webhook scripts', life: 'DELIVERY_RETENTION_MS after it finished' },
  deliveryAttempts: { name: 'wh:d:{id}:attempts', type: 'list', owner: 'webhook scripts', life: 'with its delivery' },
  deliveriesDue: { name: 'wh:due', type: 'zset', owner: 'webhook scripts', life: 'deliveries due (score: when)' },
  deliveryChain: { name: 'wh:chain:{webhook}:{job}', type: 'list', owner: 'webhook scripts', life: "a job's pending deliveries to one webhook, in order" },
  webhookDeliveries: { name: 'wh:idx:{webhook}', type: 'zset', owner: 'webhook scripts', life: 'the last WEBHOOK_DELIVERIES_KEPT' },
  jobCallbacks: { name: 'wh:idx:job:{job}', type: 'zset', owner: 'webhook scripts', life: "a job's callback deliveries" },
  // Runners, operators, the API
  runner: { name: 'runner:{id}', type: 'hash', owner: 'runner heartbeat', life: 'expires unless renewed' },
  runnerDesired: { name: 'runner:{id}:desired', type: 'string', owner: 'API (drain, resume)', life: 'until the runner applies it' },
  runners: { name: 'runners', type: 'zset', owner: 'runner registry', life: 'by last heartbeat' },
  runnersGone: { name: 'runners:gone', type: 'set', owner: 'runner registry', life: 'runners already reported gone' },
  namespaces: { name: 'namespaces', type: 'hash', owner: 'API (POST /v1/namespaces)', life: 'permanent; kept in the default namespace only' },
  variables: { name: 'variables', type: 'hash', owner: 'API (PUT /v1/variables)', life: 'permanent' },
  statsQueue: { name: 'stats:q:{queue}:{range}:{bucket}', type: 'hash', owner: 'stats aggregator', life: 'the range it covers' },
  statsRunners: { name: 'stats:runners:{range}:{bucket}', type: 'hash', owner: 'stats aggregator', life: 'the range it covers' },
  statsSampled: { name: 'stats:sampled:{slot}', type: 'string', owner: 'stats aggregator', life: 'one sample slot' },
  rate: { name: 'rate', type: 'key prefix (rate-limit windows)', owner: 'API (request guard)', life: 'one window each' },
  streams: { name: 'streams', type: 'key prefix (stream slots)', owner: 'API', life: 'while streams are open' },
  bull: { name: 'bull', type: 'key prefix (BullMQ)', owner: 'BullMQ', life: "BullMQ's own" },
  // Compatibility adapters
  coyotesList: { name: 'task:prepare:queue', type: 'list', owner: 'Coyotes clients (LPUSH)', life: 'until a runner takes the task' },
  coyotesProcessing: { name: 'task:prepare:processing:{runner}', type: 'list', owner: 'runner (Coyotes list reader)', life: 'the tasks a runner took, until created as jobs' },
  coyotesRejected: { name: 'task:prepare:rejected', type: 'list', owner: 'runner (Coyotes list reader)', life: 'until read' },
  coyotesDismissed: { name: 'compat:coyotes:dismissed', type: 'set', owner: 'API (Coyotes)', life: 'permanent' },
  meprocTasks: { name: 'compat:meproc', type: 'hash', owner: 'API (Meproc)', life: 'permanent' },
} as const satisfies Record<string, { name: string; type: string; owner: string; life: string }>;

export type KeyKind = keyof typeof KEY_SCHEMA;

/** The parts a key kind's name takes, in order (`job:{id}` takes one). */
export function keyParts(kind: KeyKind): string[] {
  return [...KEY_SCHEMA[kind].name.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
}

/** Each kind's pattern split at its parts, once: names are built on every job's hot path. */
const PIECES = new Map<KeyKind, string[]>((Object.keys(KEY_SCHEMA) as KeyKind[]).map((k) => [k, `:${KEY_SCHEMA[k].name}`.split(/\{\w+\}/)]));

/** A key's full name: `base` (the hash tag, `{prefix}`), then the kind's pattern with `parts` in order. */
export function keyName(base: string, kind: KeyKind, ...parts: (string | number)[]): string {
  const pieces = PIECES.get(kind)!;
  if (parts.length !== pieces.length - 1) throw new Error(`key ${kind} takes ${pieces.length - 1} part(s) (${keyParts(kind).join(', ')}), got ${parts.length}`);
  let out = base + pieces[0]!;
  for (let i = 0; i < parts.length; i++) out += String(parts[i]) + pieces[i + 1]!;
  return out;
}

/** The Lua functions `K.<kind>(...)` for the kinds given, built from `base` the same way as keyName. */
export function luaKeyBuilders(kinds: Iterable<KeyKind>): string {
  const lines: string[] = [];
  for (const kind of kinds) {
    const params = keyParts(kind);
    const pieces = KEY_SCHEMA[kind].name.split(/\{\w+\}/);
    const expr = pieces.flatMap((p, i) => [`'${i === 0 ? ':' : ''}${p}'`, ...(i < params.length ? [params[i]!] : [])]).filter((p) => p !== "''");
    lines.push(`function K.${kind}(${params.join(', ')}) return base .. ${expr.join(' .. ')} end`);
  }
  return lines.length > 0 ? `local K = {}\n${lines.join('\n')}` : '';
}
