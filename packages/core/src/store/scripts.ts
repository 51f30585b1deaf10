import { DAEMON_STABLE_RUN_MS, DEFAULT_DAEMON_INTERVAL_MS, DEFAULT_MAX_LOST, DEFAULT_PRIORITY, DEFAULT_RESTART_BACKOFF_MAX_MS } from '../model/job-spec.js';
import { PLACEMENT_LUA } from '../model/placement.js';
import { IDEMPOTENCY_LUA } from './idempotency.js';

/** Events kept in the stream at most (approximately: trimming is done in whole stream nodes). */
export const EVENTS_MAX_LEN = 100_000;

/** Attempt entries kept per job, the newest: a daemon restarts without end, its history must not grow with it. */
export const ATTEMPTS_KEPT = 100;

/**
 * Lua scripts: every state change of a job happens in one of these, atomically, so API replicas, scheduler
 * replicas and runners can race freely. Keys are derived from ARGV[1] (`{prefix}`) inside the scripts; all of
 * them share that hash tag and therefore one Cluster slot.
 *
 * Index layout (see keys.ts): idx:all, idx:q:<queue>, idx:s:<status>, idx:qs:<queue>:<status>, all ZSETs with
 * score 0 ordered by id.
 */
export const PRELUDE = `
local base = ARGV[1]
local function jobKey(id) return base .. ':job:' .. id end
-- Appends a lifecycle event to the events stream, in the same atomic step as the change it reports. The stream
-- is capped by length here (about ${EVENTS_MAX_LEN}) and by age by the scheduler (DROVER_EVENTS_RETENTION_MS).
-- extra: JSON members added as they are (a job's result), not decoded and encoded again (cjson would round numbers).
local function emit(etype, id, queue, data, extra)
  local d = data and cjson.encode(data) or '{}'
  if extra and extra ~= '' then d = string.sub(d, 1, -2) .. (d == '{}' and '' or ',') .. extra .. '}' end
  redis.call('XADD', base .. ':events', 'MAXLEN', '~', ${EVENTS_MAX_LEN}, '*', 't', etype, 'j', id or '', 'q', queue or '',
    'd', d)
end
-- What a job reported about itself (the runner stores both as JSON text), as members of its final event.
local function jobReport(k)
  local r = redis.call('HMGET', k, 'progress', 'result')
  local parts = {}
  if r[1] then parts[#parts + 1] = '"progress":' .. r[1] end
  if r[2] then parts[#parts + 1] = '"result":' .. r[2] end
  return table.concat(parts, ',')
end
local function move(id, queue, from, to)
  if from then
    redis.call('ZREM', base .. ':idx:s:' .. from, id)
    redis.call('ZREM', base .. ':idx:qs:' .. queue .. ':' .. from, id)
    -- A job that stops being queued stops waiting for a delivery (see toOutbox).
    if from == 'queued' then redis.call('ZREM', base .. ':q:' .. queue .. ':waiting', id) end
  end
  redis.call('ZADD', base .. ':idx:s:' .. to, 0, id)
  redis.call('ZADD', base .. ':idx:qs:' .. queue .. ':' .. to, 0, id)
end
local function attemptEntry(k, id, attempt, status, now, exitCode, signal, err)
  local h = redis.call('HMGET', k, 'runnerId', 'startedAt')
  redis.call('RPUSH', k .. ':attempts', cjson.encode({
    attempt = tonumber(attempt), runnerId = h[1] or '', status = status,
    exitCode = exitCode ~= '' and tonumber(exitCode) or cjson.null,
    signal = signal ~= '' and signal or cjson.null, error = err ~= '' and err or cjson.null,
    startedAt = tonumber(h[2]) or 0, finishedAt = tonumber(now) }))
  redis.call('LTRIM', k .. ':attempts', -${ATTEMPTS_KEPT}, -1)
end
-- Lost attempts and failed (or timed-out) ones are counted apart: each has its own budget (maxLost, retries).
local function countOutcome(k, outcome)
  if outcome == 'lost' then return redis.call('HINCRBY', k, 'lostCount', 1) end
  if outcome == 'failed' or outcome == 'timed_out' then return redis.call('HINCRBY', k, 'failureCount', 1) end
  return 0
end
-- Whether a lost attempt (the n-th) of a job that is not a daemon is run again; else the reason it is not.
local function lostAgain(spec, n)
  if spec.onLost ~= 'retry' then return false, '' end
  local max = tonumber(spec.maxLost) or ${DEFAULT_MAX_LOST}
  if n <= max then return true, '' end
  return false, ' (lost ' .. n .. ' times; maxLost is ' .. max .. ')'
end
-- A job of a schedule reached a terminal state: update what the schedule shows about its last run.
local function scheduleRunEnded(k, id, status, now)
  local h = redis.call('HMGET', k, 'schedule', 'startedAt')
  if not h[1] or h[1] == '' then return end
  local sk = base .. ':sched:' .. h[1]
  redis.call('SREM', sk .. ':running', id)
  if redis.call('EXISTS', sk) == 0 then return end
  redis.call('HSET', sk, 'lastState', status, 'lastJobId', id)
  if h[2] and h[2] ~= '' then redis.call('HSET', sk, 'lastDurationMs', tonumber(now) - tonumber(h[2])) end
  local q = redis.call('HGET', k, 'queue')
  if status == 'succeeded' then
    redis.call('HSET', sk, 'consecutiveFailures', 0)
    if redis.call('HGET', sk, 'alerting') == '1' then
      redis.call('HSET', sk, 'alerting', 0)
      emit('schedule.recovered', id, q, { schedule = h[1] })
    end
  elseif status ~= 'cancelled' then
    local n = redis.call('HINCRBY', sk, 'consecutiveFailures', 1)
    -- qschedule's alert threshold: once when the run of failures reaches it.
    local limit = tonumber(cjson.decode(redis.call('HGET', sk, 'def') or '{}').alertAfterFailures)
    if limit and n == limit then
      redis.call('HSET', sk, 'alerting', 1)
      emit('schedule.failing', id, q, { schedule = h[1], consecutiveFailures = n })
    end
  end
end
-- A job's place among the store's waiting jobs (a queue's parked set, a placement group): lower goes first; 0 for
-- the default priority, so entries written before priorities existed keep their place among default ones.
local function priorityRank(id)
  return ${DEFAULT_PRIORITY} - (tonumber(redis.call('HGET', jobKey(id), 'priority')) or ${DEFAULT_PRIORITY})
end
local function qKey(queue) return base .. ':q:' .. queue end
local function qcfgKey(queue) return base .. ':qcfg:' .. queue end
-- A queued job about to be published (again): in the outbox until the broker confirms it, and in its queue's
-- waiting set (most urgent, then oldest, first) until it is claimed, parked or declined. Each job there has a
-- broker message on its way, so a claim may take the set's first job instead of the delivered one: on a broker
-- that cannot order by priority (RabbitMQ quorum queues), the store does (CLAIM, storeOrder).
local function toOutbox(id, queue, now)
  redis.call('ZADD', base .. ':outbox', now, id)
  redis.call('ZADD', qKey(queue) .. ':waiting', priorityRank(id) * 1e13 + now, id)
end
local function notWaiting(id, queue)
  redis.call('ZREM', base .. ':outbox', id)
  redis.call('ZREM', qKey(queue) .. ':waiting', id)
end
local TERMINAL = { succeeded = true, failed = true, timed_out = true, cancelled = true, lost = true, expired = true }
-- A job that became runnable outside a publisher's hands (released by a queue gate, or its dependencies ended):
-- the scheduler publishes the ready list on its next tick; the outbox entry covers a scheduler that dies first.
local function makeReady(id, queue, now)
  toOutbox(id, queue, now)
  redis.call('RPUSH', base .. ':ready', id .. ' ' .. queue)
end
-- A step of a workflow with a concurrency limit (its job's 'wf' field) stopped running: the next parked step may go.
local function workflowSlotFreed(wf, id, now)
  if not wf then return end
  local wk = base .. ':wf:' .. wf
  redis.call('SREM', wk .. ':running', id)
  redis.call('ZREM', wk .. ':parked', id)
  while redis.call('ZCARD', wk .. ':parked') > 0 do
    local nxt = redis.call('ZPOPMIN', wk .. ':parked')[1]
    local h = redis.call('HMGET', jobKey(nxt), 'status', 'queue')
    if h[1] == 'queued' then
      makeReady(nxt, h[2], now)
      return
    end
  end
end
-- Placement: a queued job that a runner declined (it does not satisfy the job's constraints) waits in its group,
-- placement:<group> (a zset by when it came), the group listed in 'placements' (group -> {queue, constraints}) for
-- runners that satisfy them to take it from. Takes a job out of its group (claimed, cancelled, deleted).
local function unplace(k, id)
  local grp = redis.call('HGET', k, 'placedIn')
  if not grp or grp == '' then return end
  local gk = base .. ':placement:' .. grp
  redis.call('ZREM', gk, id)
  if redis.call('ZCARD', gk) == 0 then redis.call('HDEL', base .. ':placements', grp) end
  redis.call('HDEL', k, 'placedIn', 'placedAt', 'placedBy', 'placementDeclines')
end
local cancelJob
-- Its dependencies ended: a waiting job goes on to queued (or delayed, if it also has a start time ahead).
local function dependenciesMet(id, now)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'queue', 'runAt')
  if h[2] and h[2] ~= '' and tonumber(h[2]) > tonumber(now) then
    redis.call('HSET', k, 'status', 'delayed')
    redis.call('ZADD', base .. ':delayed', h[2], id)
    move(id, h[1], 'waiting', 'delayed')
    return
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  move(id, h[1], 'waiting', 'queued')
  makeReady(id, h[1], now)
end
-- Registers a job on the unfinished jobs (and running schedule runs) of each name; returns how many it waits for.
local function waitForNames(id, names)
  local pending = 0
  for _, name in ipairs(names) do
    for _, mid in ipairs(redis.call('SUNION', base .. ':named:' .. name, base .. ':sched:' .. name .. ':running')) do
      local st = redis.call('HGET', jobKey(mid), 'status')
      if mid ~= id and st and not TERMINAL[st] then
        pending = pending + redis.call('SADD', jobKey(mid) .. ':dependents', id .. '|f')
      end
    end
  end
  return pending
end
-- A job created with recheck (depNames) looks at its names again once what it waited for ended: jobs of those names
-- that started meanwhile (a task started again) hold it too, as Meproc's deps do. True when it waits on.
local function waitsAgain(id)
  local names = redis.call('HGET', jobKey(id), 'depNames')
  if not names then return false end
  local n = waitForNames(id, cjson.decode(names))
  if n == 0 then return false end
  redis.call('HSET', jobKey(id), 'depsPending', n)
  return true
end
-- Ends a job in a terminal state (not for retries), and tells the jobs that wait for it.
local function endJob(k, id, queue, from, status, now)
  redis.call('HSET', k, 'status', status, 'finishedAt', now, 'pid', '')
  move(id, queue, from, status)
  redis.call('ZREM', base .. ':expiring', id)
  local e = redis.call('HMGET', k, 'attempts', 'exitCode', 'signal', 'error', 'runnerId', 'schedule', 'name', 'dedupeKey', 'wf')
  workflowSlotFreed(e[9], id, now)
  emit('job.' .. status, id, queue, { attempt = tonumber(e[1]) or 0, exitCode = tonumber(e[2]) or cjson.null,
    signal = (e[3] and e[3] ~= '') and e[3] or cjson.null, error = (e[4] and e[4] ~= '') and e[4] or cjson.null,
    runnerId = (e[5] and e[5] ~= '') and e[5] or cjson.null, schedule = e[6] or cjson.null, name = e[7] or cjson.null }, jobReport(k))
  scheduleRunEnded(k, id, status, now)
  if e[8] and e[8] ~= '' then
    local dd = qKey(queue) .. ':dedupe'
    if redis.call('HGET', dd, e[8]) == id then redis.call('HDEL', dd, e[8]) end
  end
  if e[7] and e[7] ~= '' then redis.call('SREM', base .. ':named:' .. e[7], id) end
  -- Kept for the retention period (EXPIRE_FINISHED), oldest first.
  redis.call('ZADD', base .. ':finished', now, id)
  redis.call('ZADD', qKey(queue) .. ':finished', now, id)
  -- Per-minute counters for the queue's "last hour" figures.
  local bucket = qKey(queue) .. ':done:' .. math.floor(tonumber(now) / 60000)
  redis.call('HINCRBY', bucket, status, 1)
  redis.call('PEXPIRE', bucket, 3660000)
  -- Dependents: '|s' needs this job to succeed, '|f' only to end.
  local dk = k .. ':dependents'
  for _, entry in ipairs(redis.call('SMEMBERS', dk)) do
    local did, kind = string.match(entry, '^(.-)|(.)$')
    if did and redis.call('HGET', jobKey(did), 'status') == 'waiting' then
      if kind == 's' and status ~= 'succeeded' then
        redis.call('HSET', jobKey(did), 'error', 'dependency ' .. id .. ' ended ' .. status)
        cancelJob(did, now)
      elseif redis.call('HINCRBY', jobKey(did), 'depsPending', -1) <= 0 and not waitsAgain(did) then
        dependenciesMet(did, now)
      end
    end
  end
  redis.call('DEL', dk)
end
-- Registers a new job's dependencies. meta.after: job ids that must succeed; meta.afterNames: names (schedules,
-- named jobs) whose unfinished jobs must end first; a name with nothing unfinished does not block; meta.afterEnd:
-- job ids that must end, whatever their outcome (a restart: the new copy starts once the old one stopped).
-- Returns the number still pending, or nil and a reason when a dependency already failed.
local function addDependencies(id, meta)
  local pending = 0
  for _, dep in ipairs(meta.after or {}) do
    local st = redis.call('HGET', jobKey(dep), 'status')
    if st and TERMINAL[st] and st ~= 'succeeded' then return nil, 'dependency ' .. dep .. ' ended ' .. st end
    if st and st ~= 'succeeded' then pending = pending + redis.call('SADD', jobKey(dep) .. ':dependents', id .. '|s') end
  end
  pending = pending + waitForNames(id, meta.afterNames or {})
  for _, dep in ipairs(meta.afterEnd or {}) do
    local st = redis.call('HGET', jobKey(dep), 'status')
    if dep ~= id and st and not TERMINAL[st] then pending = pending + redis.call('SADD', jobKey(dep) .. ':dependents', id .. '|f') end
  end
  return pending
end
-- The key a queue with dedupe on uses: the command line itself.
local function commandIdentity(spec)
  local s = cjson.decode(spec)
  local argv = type(s.argv) == 'table' and table.concat(s.argv, '\\0') or ''
  local args = type(s.args) == 'table' and table.concat(s.args, '\\0') or ''
  return redis.sha1hex((s.command or '') .. '\\1' .. argv .. '\\1' .. args)
end
-- Creates one job record: waiting (dependencies), delayed (runAt), or queued (with an outbox entry). A replay of
-- the same create (a client library re-sending it after a reconnect) must not reset a job that has moved on: it
-- is a no-op. With a dedupe key already held by an unfinished job, nothing is created: returns 'duplicate', its id.
local function createJob(id, queue, spec, runAt, now, meta)
  local k = jobKey(id)
  if redis.call('EXISTS', k) == 1 then return redis.call('HGET', k, 'status'), id end
  meta = meta or {}
  local dkey = meta.dedupeKey
  if (not dkey or dkey == '') and redis.call('HGET', qcfgKey(queue), 'dedupe') == '1' then dkey = commandIdentity(spec) end
  -- Copies of one submission share the key: only copy 0 checks and holds it (the others follow it either way).
  local follower = (tonumber(meta.replica) or 0) > 0 and redis.call('EXISTS', jobKey(meta.replicaOf)) == 1
  if dkey and dkey ~= '' and not follower then
    local existing = redis.call('HGET', qKey(queue) .. ':dedupe', dkey)
    if existing then
      local st = redis.call('HGET', jobKey(existing), 'status')
      if st and not TERMINAL[st] then return 'duplicate', existing end
    end
    redis.call('HSET', qKey(queue) .. ':dedupe', dkey, id)
    redis.call('HSET', k, 'dedupeKey', dkey)
  end
  redis.call('HSET', k, 'v', 1, 'id', id, 'queue', queue, 'spec', spec, 'attempts', 0, 'createdAt', now, 'outputBytes', 0)
  if meta.replica then redis.call('HSET', k, 'replica', meta.replica, 'replicaOf', meta.replicaOf or id) end
  if meta.callbackUrl then redis.call('HSET', k, 'callbackUrl', meta.callbackUrl) end
  if meta.trace then redis.call('HSET', k, 'trace', meta.trace) end
  if meta.placement then redis.call('HSET', k, 'placement', meta.placement) end
  if meta.priority then redis.call('HSET', k, 'priority', meta.priority) end
  -- A deadline: no attempt starts after it (the claim checks; the scheduler's sweep ends jobs nobody claims).
  local expiresAt = tonumber(meta.expiresAt) or (tonumber(meta.ttlMs) and tonumber(now) + tonumber(meta.ttlMs))
  if expiresAt then
    redis.call('HSET', k, 'expiresAt', expiresAt)
    redis.call('ZADD', base .. ':expiring', expiresAt, id)
  end
  if meta.wfLimit then redis.call('HSET', k, 'wf', meta.workflow, 'wfLimit', meta.wfLimit) end
  if meta.name and meta.name ~= '' then
    redis.call('HSET', k, 'name', meta.name)
    redis.call('SADD', base .. ':named:' .. meta.name, id)
  end
  redis.call('ZADD', base .. ':idx:all', 0, id)
  redis.call('ZADD', base .. ':idx:q:' .. queue, 0, id)
  redis.call('SADD', base .. ':queues', queue)
  local pending, failed = addDependencies(id, meta)
  if not pending or pending > 0 then
    redis.call('HSET', k, 'status', 'waiting', 'depsPending', pending or 0)
    if meta.recheck and meta.afterNames then redis.call('HSET', k, 'depNames', cjson.encode(meta.afterNames)) end
    if runAt ~= '' then redis.call('HSET', k, 'runAt', runAt) end
    move(id, queue, nil, 'waiting')
    emit('job.submitted', id, queue, { status = 'waiting', name = meta.name or cjson.null })
    if not pending then
      redis.call('HSET', k, 'error', failed)
      cancelJob(id, now)
      return 'cancelled', id
    end
    return 'waiting', id
  end
  if runAt ~= '' then
    redis.call('HSET', k, 'status', 'delayed', 'runAt', runAt)
    redis.call('ZADD', base .. ':delayed', runAt, id)
    move(id, queue, nil, 'delayed')
    emit('job.submitted', id, queue, { status = 'delayed', runAt = tonumber(runAt), name = meta.name or cjson.null })
    return 'delayed', id
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  toOutbox(id, queue, now)
  move(id, queue, nil, 'queued')
  emit('job.submitted', id, queue, { status = 'queued', name = meta.name or cjson.null })
  return 'queued', id
end
-- Cancels a job: at once when it waits, by flag when it runs (its runner stops it).
-- Returns cancelled | flagged | ended | missing, and the status it had.
cancelJob = function(id, now)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if not h[1] then return 'missing', '' end
  if h[1] == 'queued' or h[1] == 'delayed' or h[1] == 'waiting' then
    notWaiting(id, h[2])
    redis.call('ZREM', base .. ':delayed', id)
    redis.call('ZREM', qKey(h[2]) .. ':parked', id)
    redis.call('ZREM', qKey(h[2]) .. ':releasing', id)
    unplace(k, id)
    endJob(k, id, h[2], h[1], 'cancelled', now)
    return 'cancelled', 'cancelled'
  end
  if h[1] == 'running' then
    redis.call('HSET', k, 'cancelRequested', 1)
    return 'flagged', 'running'
  end
  return 'ended', h[1]
end
-- A job that waits (waiting, delayed, queued) past its deadline ends expired instead of starting late. True if it did.
local function expireJob(id, now)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] ~= 'queued' and h[1] ~= 'delayed' and h[1] ~= 'waiting' then return false end
  notWaiting(id, h[2])
  redis.call('ZREM', base .. ':delayed', id)
  redis.call('ZREM', qKey(h[2]) .. ':parked', id)
  redis.call('ZREM', qKey(h[2]) .. ':releasing', id)
  unplace(k, id)
  redis.call('HSET', k, 'error', 'its deadline (expiresAt) passed before an attempt started')
  endJob(k, id, h[2], h[1], 'expired', now)
  return true
end
-- Puts a running job back for another attempt: now (queued + outbox) or later (delayed).
local function requeue(k, id, queue, now, delay)
  redis.call('ZREM', base .. ':leases', id)
  local r = redis.call('HMGET', k, 'wf', 'attempts')
  workflowSlotFreed(r[1], id, now)
  redis.call('HSET', k, 'pid', '', 'cancelRequested', '')
  emit('job.retried', id, queue, { attempt = tonumber(r[2]) or 0, delayMs = delay })
  -- A retry of a job with a deadline is swept at the deadline too, should it still wait then.
  local deadline = redis.call('HGET', k, 'expiresAt')
  if deadline then redis.call('ZADD', base .. ':expiring', deadline, id) end
  if delay > 0 then
    redis.call('HSET', k, 'status', 'delayed', 'runAt', now + delay)
    redis.call('ZADD', base .. ':delayed', now + delay, id)
    move(id, queue, 'running', 'delayed')
    return 'delayed'
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  toOutbox(id, queue, now)
  move(id, queue, 'running', 'queued')
  return 'queued'
end
-- A daemon's run ended (not stopped): start it again. After a lost run at once, uncounted (the runner failed, not
-- the daemon). After its own exit: intervalMs, doubled for every short run in a row up to restartBackoffMaxMs; a
-- run as long as the cap (at most ${DAEMON_STABLE_RUN_MS / 1000} s) starts the backoff over. Returns the new status, or nil once
-- maxRestarts restarts were made (the error says so; the caller ends the job).
local function daemonRestart(k, id, queue, spec, outcome, now)
  if outcome == 'lost' then return requeue(k, id, queue, now, 0) end
  local r = redis.call('HMGET', k, 'restarts', 'shortRuns', 'startedAt', 'error', 'exitCode')
  local restarts = tonumber(r[1]) or 0
  local max = tonumber(spec.maxRestarts)
  if max and restarts >= max then
    local last = outcome .. ((r[5] and r[5] ~= '') and (' with exit code ' .. r[5]) or '') .. ((r[4] and r[4] ~= '') and (': ' .. r[4]) or '')
    redis.call('HSET', k, 'error', 'the daemon was restarted ' .. restarts .. ' times (maxRestarts ' .. max .. '); its last run ended ' .. last)
    return nil
  end
  local interval = tonumber(spec.intervalMs) or ${DEFAULT_DAEMON_INTERVAL_MS}
  local cap = math.max(interval, tonumber(spec.restartBackoffMaxMs) or ${DEFAULT_RESTART_BACKOFF_MAX_MS})
  local ran = now - (tonumber(r[3]) or now)
  local short = 0
  if ran < math.min(cap, ${DAEMON_STABLE_RUN_MS}) then short = (tonumber(r[2]) or 0) + 1 end
  local delay = math.min(cap, interval * 2 ^ math.min(math.max(short - 1, 0), 40))
  redis.call('HSET', k, 'restarts', restarts + 1, 'shortRuns', short)
  return requeue(k, id, queue, now, delay)
end
`;

/**
 * ARGV: base, now, options JSON|'', then (id, queue, spec, runAt|'', meta JSON|'') per job. meta: {dedupeKey, name,
 * replica, replicaOf, after: [job ids], afterNames: [names], afterEnd: [job ids], recheck: 1}. options: {idem: {d, fp, ttl}} for a keyed submission,
 * {wf: {id, doc}} to store a workflow's record with its step jobs. Checks first that every job id in `after` exists or
 * comes earlier in the batch (else nothing is written: returns {'unknown', id}); then creates all. Returns {status,
 * id} per job, id being the existing job for a duplicate. With idem, a key seen before creates nothing and returns
 * {'replay', ref, status, id, ...} (what it created then) or {'reused'} (it came with another request); a new key is
 * bound to the results in this same step, so no retry can find the jobs without their binding or the other way round.
 */
export const CREATE = `${PRELUDE}${IDEMPOTENCY_LUA}
local now = tonumber(ARGV[2])
local options = ARGV[3] ~= '' and cjson.decode(ARGV[3]) or {}
local seen = idemCheck(options.idem)
if seen then return seen end
local metas = {}
-- Jobs of this batch may depend on ones before them in it (a workflow's steps, in topological order).
local earlier = {}
for i = 4, #ARGV, 5 do
  local meta = ARGV[i + 4] ~= '' and cjson.decode(ARGV[i + 4]) or {}
  for _, dep in ipairs(meta.after or {}) do
    if not earlier[dep] and redis.call('EXISTS', jobKey(dep)) == 0 then return {'unknown', dep} end
  end
  metas[i] = meta
  earlier[ARGV[i]] = true
end
local out = {}
for i = 4, #ARGV, 5 do
  local status, id = createJob(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now, metas[i])
  out[#out + 1] = status
  out[#out + 1] = id
end
if options.wf then
  redis.call('HSET', base .. ':wf:' .. options.wf.id, 'doc', options.wf.doc)
  redis.call('ZADD', base .. ':wf:idx', 0, options.wf.id)
end
idemBind(options.idem, options.wf and options.wf.id, out)
return out
`;

/**
 * ARGV: base, id, runnerId, now, leaseUntil, token, placement (the runner: encodePlacement, or ''), storeOrder ('1' or
 * ''), the delivery's queue. The one gate before a spawn: only a queued job can be claimed,
 * so a duplicate delivery finds it running or finished and is dropped. The token is unique per delivery: a claim
 * replayed by the client library after a reconnect (already applied before the connection dropped) finds its own
 * token and gets its claim back instead of being taken for a duplicate.
 *
 * The queue's settings gate the claim too: paused, at its global concurrency, over its rate limit, or with older
 * jobs parked ahead (released most urgent first, then first come, first served) the job is parked in the queue instead: it stays `queued`, its
 * message is acknowledged, and it is released (republished) when the queue has room (RELEASE_PARKED).
 * Returns {1, attempt, spec, outputBytes, gated 0|1, queueDefaultTimeoutMs|'', replica|'', queuedAt|'', traceparent|'',
 * queueResources (JSON)|'', the id of the job claimed (another than ARGV's under store order)}
 * or {0, currentStatus|'parked'|'placement'|'expired'}: 'placement' when the runner does not satisfy the job's constraints,
 * 'expired' when the job's deadline passed (it ended expired now).
 */
export const CLAIM = `${PRELUDE}${PLACEMENT_LUA}
local id, runnerId, now, leaseUntil, token = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
-- Store order (ARGV[8] '1', ARGV[9] the delivery's queue): a delivery claims its queue's most urgent waiting job
-- this runner may run, which need not be the job it names. Every waiting job has a message of its own on the way,
-- so the job a delivery passed over is taken by the message of the job it took (or by its own, redelivered), and
-- a message that finds nothing waiting is a spare: its own job decides (dropped if it ran). A claim replayed after
-- a reconnect finds the job it took under its token. Declined jobs a runner takes from the store pass no '1'.
local function storeOrder(id)
  local taken = redis.call('GET', base .. ':claimed-with:' .. token)
  if taken then return taken end
  local w = qKey(ARGV[9]) .. ':waiting'
  for _, m in ipairs(redis.call('ZRANGE', w, 0, 15)) do
    if m == id then return id end
    local f = redis.call('HMGET', jobKey(m), 'status', 'placement')
    if f[1] ~= 'queued' then
      redis.call('ZREM', w, m) -- ended by a path that left it listed
    elseif not f[2] or placementAllows(f[2], ARGV[7]) then
      redis.call('SET', base .. ':claimed-with:' .. token, m, 'PX', 60000)
      return m
    end
  end
  return id
end
if ARGV[8] == '1' then id = storeOrder(id) end
local k = jobKey(id)
local h = redis.call('HMGET', k, 'status', 'queue', 'spec', 'outputBytes', 'claimToken', 'attempts', 'replica', 'wf', 'wfLimit', 'queuedAt', 'trace', 'placement', 'placedIn')
local cfg = redis.call('HMGET', qcfgKey(h[2] or ''), 'paused', 'concurrency', 'rateMax', 'ratePerMs', 'defaultTimeoutMs', 'resources')
local gated = (cfg[1] == '1' or cfg[2] or cfg[3]) and 1 or 0
if h[1] == 'running' and h[5] == token then return {1, tonumber(h[6]), h[3], h[4] or '0', gated, cfg[5] or '', h[7] or '', h[10] or '', h[11] or '', cfg[6] or '', id} end
if h[1] ~= 'queued' then return {0, h[1] or 'missing'} end
-- Past its deadline: it ends expired instead of starting late.
local deadline = tonumber(redis.call('HGET', k, 'expiresAt') or '')
if deadline and now >= deadline then
  expireJob(id, now)
  return {0, 'expired'}
end
-- Constraints: a runner that does not satisfy them declines the job into its placement group (its message is
-- acknowledged) and tells the runners; one that does takes it from there (see unplace, PLACED).
if h[12] then
  if not placementAllows(h[12], ARGV[7]) then
    local grp = redis.sha1hex(h[2] .. ' ' .. h[12])
    if h[13] ~= grp then redis.call('HSET', k, 'placedIn', grp, 'placedAt', now) end
    -- Most urgent first, then oldest: the rank's weight (1e13 ms, centuries) is larger than any epoch time.
    redis.call('ZADD', base .. ':placement:' .. grp, 'NX', now + priorityRank(id) * 1e13, id)
    local notice = '{"queue":' .. cjson.encode(h[2]) .. ',"constraints":' .. h[12] .. '}'
    redis.call('HSET', base .. ':placements', grp, notice)
    redis.call('HSET', k, 'placedBy', runnerId)
    redis.call('HINCRBY', k, 'placementDeclines', 1)
    notWaiting(id, h[2])
    redis.call('PUBLISH', base .. ':control', '{"type":"placement","group":"' .. grp .. '",' .. string.sub(notice, 2))
    return {0, 'placement'}
  end
  if h[13] then unplace(k, id) end
end
-- A workflow's own concurrency: its steps past the limit wait in the workflow's parked set.
if h[9] and redis.call('SCARD', base .. ':wf:' .. h[8] .. ':running') >= tonumber(h[9]) then
  redis.call('ZADD', base .. ':wf:' .. h[8] .. ':parked', priorityRank(id), id)
  notWaiting(id, h[2])
  return {0, 'parked'}
end
local qk = qKey(h[2])
if gated == 1 then
  redis.call('ZREMRANGEBYSCORE', qk .. ':releasing', '-inf', now - 10000)
  local released = redis.call('ZSCORE', qk .. ':releasing', id)
  local reserved = redis.call('ZCARD', qk .. ':releasing') - (released and 1 or 0)
  local park = cfg[1] == '1'
  if not park and not released and redis.call('ZCARD', qk .. ':parked') > 0 then park = true end
  if not park and cfg[2] then
    park = redis.call('ZCARD', base .. ':idx:qs:' .. h[2] .. ':running') + reserved >= tonumber(cfg[2])
  end
  if not park and cfg[3] then
    redis.call('ZREMRANGEBYSCORE', qk .. ':starts', '-inf', now - tonumber(cfg[4]))
    park = redis.call('ZCARD', qk .. ':starts') + reserved >= tonumber(cfg[3])
  end
  redis.call('ZREM', qk .. ':releasing', id)
  if park then
    -- Released most urgent first; equal priorities by id, the order they came.
    redis.call('ZADD', qk .. ':parked', priorityRank(id), id)
    redis.call('SADD', base .. ':parked-queues', h[2])
    notWaiting(id, h[2])
    return {0, 'parked'}
  end
  if cfg[3] then redis.call('ZADD', qk .. ':starts', now, id .. ':' .. (tonumber(h[6]) + 1)) end
end
if h[9] then redis.call('SADD', base .. ':wf:' .. h[8] .. ':running', id) end
local attempt = redis.call('HINCRBY', k, 'attempts', 1)
redis.call('HSET', k, 'status', 'running', 'runnerId', runnerId, 'startedAt', now, 'claimedAt', now, 'pid', '',
  'exitCode', '', 'signal', '', 'error', '', 'finishedAt', '', 'claimToken', token)
redis.call('ZADD', base .. ':leases', leaseUntil, id)
redis.call('ZREM', base .. ':outbox', id)
move(id, h[2], 'queued', 'running')
emit('job.started', id, h[2], { attempt = attempt, runnerId = runnerId })
return {1, attempt, h[3], h[4] or '0', gated, cfg[5] or '', h[7] or '', h[10] or '', h[11] or '', cfg[6] or '', id}
`;

/**
 * ARGV: base, queue, now, limit. Releases parked jobs of a queue as far as its settings allow now: they go back to
 * the outbox and the ready list, and are returned ({id, ...}) for the caller to publish.
 */
export const RELEASE_PARKED = `${PRELUDE}
local queue, now, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local qk = qKey(queue)
local cfg = redis.call('HMGET', qcfgKey(queue), 'paused', 'concurrency', 'rateMax', 'ratePerMs')
if redis.call('ZCARD', qk .. ':parked') == 0 then
  redis.call('SREM', base .. ':parked-queues', queue)
  return {}
end
if cfg[1] == '1' then return {} end
redis.call('ZREMRANGEBYSCORE', qk .. ':releasing', '-inf', now - 10000)
local reserved = redis.call('ZCARD', qk .. ':releasing')
local n = limit
if cfg[2] then n = math.min(n, tonumber(cfg[2]) - redis.call('ZCARD', base .. ':idx:qs:' .. queue .. ':running') - reserved) end
if cfg[3] then
  redis.call('ZREMRANGEBYSCORE', qk .. ':starts', '-inf', now - tonumber(cfg[4]))
  n = math.min(n, tonumber(cfg[3]) - redis.call('ZCARD', qk .. ':starts') - reserved)
end
local out = {}
if n <= 0 then return out end
for _, id in ipairs(redis.call('ZRANGE', qk .. ':parked', 0, n - 1)) do
  redis.call('ZREM', qk .. ':parked', id)
  if redis.call('HGET', jobKey(id), 'status') == 'queued' then
    redis.call('ZADD', qk .. ':releasing', now, id)
    toOutbox(id, queue, now)
    out[#out + 1] = id
  end
end
if redis.call('ZCARD', qk .. ':parked') == 0 then redis.call('SREM', base .. ':parked-queues', queue) end
return out
`;

/**
 * ARGV: base, queue, now, limit, statuses (comma-joined: queued, delayed, waiting). Cancels up to `limit` jobs of
 * the queue that have not started. Returns how many it cancelled (call again while it returns `limit`).
 */
export const CANCEL_WAITING = `${PRELUDE}
local queue, now, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
for status in string.gmatch(ARGV[5], '[^,]+') do
  local ids = redis.call('ZRANGE', base .. ':idx:qs:' .. queue .. ':' .. status, 0, limit - #out - 1)
  for _, id in ipairs(ids) do
    if cancelJob(id, now) == 'cancelled' then out[#out + 1] = id end
  end
  if #out >= limit then break end
end
return out
`;

/** ARGV: base, id, runnerId, attempt, pid, startedAt. Records the pid only if this attempt still owns the job. */
export const SET_PID = `${PRELUDE}
local k = jobKey(ARGV[2])
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts')
if h[1] ~= 'running' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'pid', ARGV[5], 'startedAt', ARGV[6])
return 1
`;

/**
 * ARGV: base, id, runnerId, attempt, now, runningMs, alertAfterMs. The attempt has run past its alertAfterMs: records
 * slowAt and emits job.slow, only if this attempt still owns the job. Returns 1 if it did.
 */
export const MARK_SLOW = `${PRELUDE}
local id = ARGV[2]
local k = jobKey(id)
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts', 'queue')
if h[1] ~= 'running' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'slowAt', ARGV[5])
emit('job.slow', id, h[4], { attempt = tonumber(ARGV[4]), runnerId = ARGV[3], runningMs = tonumber(ARGV[6]), alertAfterMs = tonumber(ARGV[7]) })
return 1
`;

/**
 * ARGV: base, id, runnerId, attempt, now, outcome, exitCode, signal, error, outputBytes, truncated, retryDelayMs,
 * startedAt (when the process was spawned; '' if it never was), usage (JSON resource usage or ''), final (1: no retry, no daemon restart).
 * outcome is succeeded|failed|timed_out|cancelled|lost. A pending cancel turns any unsuccessful outcome into cancelled.
 * A failed or timed-out attempt is retried while the job's failures <= retries; a lost one (with onLost=retry) while
 * its losses <= maxLost: two budgets, counted in the record (failureCount, lostCount). A daemon is restarted instead,
 * with backoff (daemonRestart).
 * Returns {1, finalStatus} | {2, 'queued'|'delayed', queue} (retry) | {0, currentStatus} (not ours any more).
 */
export const FINISH = `${PRELUDE}
local id, runnerId, attempt, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local outcome, exitCode, signal, err = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local k = jobKey(id)
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts', 'queue', 'spec', 'cancelRequested')
if h[1] ~= 'running' or h[2] ~= runnerId or h[3] ~= attempt then return {0, h[1] or 'missing'} end
local spec = cjson.decode(h[5])
-- A cancel wins unless the command had already succeeded: report what really happened. A daemon has no success
-- of its own: stopping it is its end.
if h[6] == '1' and (outcome ~= 'succeeded' or spec.type == 'daemon') then outcome = 'cancelled' end
if ARGV[13] ~= '' then redis.call('HSET', k, 'startedAt', ARGV[13]) end
redis.call('HSET', k, 'usage', ARGV[14])
attemptEntry(k, id, attempt, outcome, now, exitCode, signal, err)
local n = countOutcome(k, outcome)
redis.call('HSET', k, 'exitCode', exitCode, 'signal', signal, 'error', err, 'outputBytes', ARGV[10], 'truncated', ARGV[11])
-- ARGV[15] '1': the failure is the job's end (refused by policy): every further attempt would be refused again.
local final = ARGV[15] == '1'
if spec.type == 'daemon' and h[6] ~= '1' and not final then
  local status = daemonRestart(k, id, h[4], spec, outcome, now)
  if status then return {2, status, h[4]} end
  redis.call('ZREM', base .. ':leases', id)
  endJob(k, id, h[4], 'running', 'failed', now)
  return {1, 'failed'}
end
if not final and outcome == 'lost' then
  local again, why = lostAgain(spec, n)
  -- A lost attempt is the runner's failure, not the job's: run it again at once, as a lease expiry does.
  if again then return {2, requeue(k, id, h[4], now, 0), h[4]} end
  if why ~= '' then redis.call('HSET', k, 'error', err .. why) end
elseif not final and (outcome == 'failed' or outcome == 'timed_out') and n <= (tonumber(spec.retries) or 0) then
  return {2, requeue(k, id, h[4], now, tonumber(ARGV[12]) or 0), h[4]}
end
redis.call('ZREM', base .. ':leases', id)
endJob(k, id, h[4], 'running', outcome, now)
return {1, outcome}
`;

/**
 * ARGV: base, id, now. Queued or delayed: cancelled at once (its broker message is dropped at claim).
 * Running: flagged, the owning runner kills it. Returns {action, status} with action
 * cancelled | flagged | ended (already terminal, unchanged) | missing.
 */
export const CANCEL = `${PRELUDE}
local action, status = cancelJob(ARGV[2], ARGV[3])
return {action, status}
`;

/** Moves a delayed job to queued (+outbox), due or not. Returns its queue, or nil and the status it has (or 'missing'). */
const PROMOTE_JOB = `
local function promoteJob(id, now)
  redis.call('ZREM', base .. ':delayed', id)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] ~= 'delayed' then return nil, h[1] or 'missing' end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  toOutbox(id, h[2], now)
  move(id, h[2], 'delayed', 'queued')
  return h[2]
end
`;

/** ARGV: base, now, limit. Moves due delayed jobs to queued (+outbox). Returns {id, queue, ...}. */
export const PROMOTE = `${PRELUDE}${PROMOTE_JOB}
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGE', base .. ':delayed', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(due) do
  local queue = promoteJob(id, now)
  if queue then
    out[#out + 1] = id
    out[#out + 1] = queue
  end
end
return out
`;

/**
 * ARGV: base, id, now. Starts a delayed job now (POST /v1/jobs/:id/promote): queued (+outbox), for the caller to
 * publish. Returns {'promoted', queue}, or {status} of a job that is not delayed ('missing' if there is none).
 */
export const PROMOTE_ONE = `${PRELUDE}${PROMOTE_JOB}
local queue, status = promoteJob(ARGV[2], tonumber(ARGV[3]))
if queue then return {'promoted', queue} end
return {status}
`;

/**
 * ARGV: base, now, limit. Jobs past their deadline that still wait (waiting, delayed, queued: nobody claimed them) end
 * expired, with their event. Returns {id, queue, ...} of those it ended.
 */
export const EXPIRE_DUE = `${PRELUDE}
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', base .. ':expiring', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  -- A running one leaves the set: its retries come back to it (requeue) and the claim checks them.
  redis.call('ZREM', base .. ':expiring', id)
  local queue = redis.call('HGET', jobKey(id), 'queue')
  if expireJob(id, now) then
    out[#out + 1] = id
    out[#out + 1] = queue
  end
end
return out
`;

/**
 * ARGV: base, now, limit. Running jobs whose lease expired (their runner stopped heartbeating) are lost: run again
 * at once when onLost=retry and the job's losses are within maxLost (a daemon always), else final `lost`.
 * Returns {id, queue, status, ...}.
 */
export const EXPIRE_LEASES = `${PRELUDE}
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call('ZRANGE', base .. ':leases', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', base .. ':leases', id)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue', 'spec', 'attempts', 'cancelRequested')
  if h[1] == 'running' then
    local spec = cjson.decode(h[3])
    local err = 'lease expired: the runner stopped heartbeating'
    attemptEntry(k, id, h[4], 'lost', now, '', '', err)
    local again, why = true, ''
    local n = countOutcome(k, 'lost')
    if spec.type ~= 'daemon' then again, why = lostAgain(spec, n) end
    redis.call('HSET', k, 'error', err .. why)
    local status
    if h[5] ~= '1' and again then
      status = requeue(k, id, h[2], now, 0)
    else
      status = h[5] == '1' and 'cancelled' or 'lost'
      endJob(k, id, h[2], 'running', status, now)
    end
    out[#out + 1] = id
    out[#out + 1] = h[2]
    out[#out + 1] = status
  end
end
return out
`;

/**
 * ARGV: base, now, staleBefore, limit. Queued jobs still in the outbox (publish never confirmed, or the
 * publisher died) are handed out again for republishing; their score is bumped so replicas don't all pick them.
 */
export const SWEEP_OUTBOX = `${PRELUDE}
local now, staleBefore, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local stale = redis.call('ZRANGE', base .. ':outbox', '-inf', staleBefore, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(stale) do
  local h = redis.call('HMGET', jobKey(id), 'status', 'queue')
  if h[1] == 'queued' then
    redis.call('ZADD', base .. ':outbox', now, id)
    out[#out + 1] = id
    out[#out + 1] = h[2]
  else
    redis.call('ZREM', base .. ':outbox', id)
  end
end
return out
`;

/**
 * ARGV: base, runnerId, leaseUntil, id1, attempt1, id2, attempt2, ... Renews the leases this runner still
 * holds. Returns {lostIds, cancelIds}: jobs it no longer owns (kill them) and jobs asked to cancel.
 *
 * Flagged allow-oom: it only moves scores of members already there (ZADD XX), so it adds no memory, and it must
 * go on working while Redis is full: a runner holding an outcome it cannot record yet keeps its lease, so the job is
 * not taken for lost and run again. (Unflagged, Redis would refuse the ZADD at maxmemory.) Needs Redis 7.
 */
export const RENEW = `#!lua flags=allow-oom
${PRELUDE}
local runnerId, leaseUntil = ARGV[2], ARGV[3]
local lost, cancel = {}, {}
for i = 4, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local h = redis.call('HMGET', jobKey(id), 'status', 'runnerId', 'attempts', 'cancelRequested')
  if h[1] == 'running' and h[2] == runnerId and h[3] == attempt then
    redis.call('ZADD', base .. ':leases', 'XX', leaseUntil, id)
    if h[4] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
`;

/**
 * ARGV: base, group, limit. Of the first `limit` jobs of a placement group (most urgent, then oldest, first) that still
 * wait there, those of the most urgent priority among them; entries of
 * jobs that moved on are dropped, and the group is unlisted once empty.
 */
export const PLACED = `${PRELUDE}
local grp, limit = ARGV[2], tonumber(ARGV[3])
local gk = base .. ':placement:' .. grp
local out = {}
-- Only the most urgent of them: a runner picks one of these at random (so runners rarely race for one job), and a
-- less urgent job must not be picked while a more urgent one waits.
local rank
for _, id in ipairs(redis.call('ZRANGE', gk, 0, limit - 1)) do
  local h = redis.call('HMGET', jobKey(id), 'status', 'placedIn')
  if h[1] == 'queued' and h[2] == grp then
    rank = rank or priorityRank(id)
    if priorityRank(id) == rank then out[#out + 1] = id end
  else
    redis.call('ZREM', gk, id)
  end
end
if redis.call('ZCARD', gk) == 0 then redis.call('HDEL', base .. ':placements', grp) end
return out
`;

/** ARGV: base, id1, id2, ... Deletes jobs that still wait (their submission failed and the client got an error). */
export const DISCARD = `${PRELUDE}
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] == 'queued' or h[1] == 'delayed' or h[1] == 'waiting' then
    -- Unhooked from its dedupe key and name; entries in the dependents sets of its dependencies are skipped later.
    local x = redis.call('HMGET', k, 'dedupeKey', 'name')
    if x[1] and redis.call('HGET', qKey(h[2]) .. ':dedupe', x[1]) == id then redis.call('HDEL', qKey(h[2]) .. ':dedupe', x[1]) end
    if x[2] then redis.call('SREM', base .. ':named:' .. x[2], id) end
    unplace(k, id)
    redis.call('DEL', k, k .. ':attempts')
    redis.call('ZREM', base .. ':idx:all', id)
    redis.call('ZREM', base .. ':idx:q:' .. h[2], id)
    redis.call('ZREM', base .. ':idx:s:' .. h[1], id)
    redis.call('ZREM', base .. ':idx:qs:' .. h[2] .. ':' .. h[1], id)
    notWaiting(id, h[2])
    redis.call('ZREM', base .. ':delayed', id)
    redis.call('ZREM', base .. ':expiring', id)
    n = n + 1
  end
end
return n
`;

/** Deletes a finished job's record, output, attempts and index entries; false (nothing deleted) for an unfinished one. */
const FORGET = `
local function forgetFinished(id, h)
  local k = jobKey(id)
  redis.call('ZREM', base .. ':finished', id)
  if h[2] then redis.call('ZREM', qKey(h[2]) .. ':finished', id) end
  if not h[1] or not TERMINAL[h[1]] then return false end
  redis.call('DEL', k, k .. ':attempts', k .. ':log', k .. ':dependents')
  redis.call('ZREM', base .. ':idx:all', id)
  redis.call('ZREM', base .. ':idx:q:' .. h[2], id)
  redis.call('ZREM', base .. ':idx:s:' .. h[1], id)
  redis.call('ZREM', base .. ':idx:qs:' .. h[2] .. ':' .. h[1], id)
  if h[3] then redis.call('ZREM', base .. ':sched:' .. h[3] .. ':runs', id) end
  return true
end
local function finishedFields(id) return redis.call('HMGET', jobKey(id), 'status', 'queue', 'schedule', 'archived', 'finishedAt') end
`;

/**
 * ARGV: base, cutoff (epoch ms), limit, maxPerQueue, needArchived (1|0). Retention: finished jobs that ended before the cutoff, and the
 * oldest beyond maxPerQueue in each queue, are deleted with their output, attempts and index entries, so Redis
 * memory stays bounded however long Drover runs. Returns how many it deleted (call again while it returns limit).
 */
export const EXPIRE_FINISHED = `${PRELUDE}${FORGET}
local cutoff, limit, maxPerQueue, needArchived = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local n = 0
local function forget(id)
  local h = finishedFields(id)
  -- With an archive, a job leaves Redis only once it is in there.
  if needArchived and h[1] and h[4] ~= '1' then return end
  if forgetFinished(id, h) then n = n + 1 end
end
for _, id in ipairs(redis.call('ZRANGE', base .. ':finished', '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, limit)) do forget(id) end
for _, q in ipairs(redis.call('SMEMBERS', base .. ':queues')) do
  local over = redis.call('ZCARD', qKey(q) .. ':finished') - maxPerQueue
  if over > 0 and n < limit then
    for _, id in ipairs(redis.call('ZRANGE', qKey(q) .. ':finished', 0, math.min(over, limit - n) - 1)) do forget(id) end
  end
end
return n
`;

/** ARGV: base, ids... Deletes those of the jobs that are finished (DELETE /v1/jobs/:id); returns the ids it deleted. */
export const DELETE_FINISHED = `${PRELUDE}${FORGET}
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if forgetFinished(id, finishedFields(id)) then out[#out + 1] = id end
end
return out
`;

/**
 * ARGV: base, queue, status, before (epoch ms), from (exclusive lex bound: an id, or the id-time bound of before), limit.
 * Scans up to limit ids of the queue's status index below from, newest first, and deletes those that finished before
 * before. Returns the last id scanned ('' when the index has no more), then the deleted ids.
 */
export const DELETE_FINISHED_BEFORE = `${PRELUDE}${FORGET}
local queue, status, before, from, limit = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local ids = redis.call('ZREVRANGEBYLEX', base .. ':idx:qs:' .. queue .. ':' .. status, '(' .. from, '-', 'LIMIT', 0, limit)
local out = { #ids == limit and ids[#ids] or '' }
for _, id in ipairs(ids) do
  local h = finishedFields(id)
  if h[1] == status and tonumber(h[5] or '') and tonumber(h[5]) < before and forgetFinished(id, h) then out[#out + 1] = id end
end
return out
`;

/** ARGV: base, id, newId. Marks a job as run again by newId unless it was (or is gone); returns 1 if it marked it. */
export const MARK_RETRIED = `${PRELUDE}
local k = jobKey(ARGV[2])
if redis.call('EXISTS', k) == 0 then return 0 end
return redis.call('HSETNX', k, 'retriedAs', ARGV[3])
`;
