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
local function move(id, queue, from, to)
  if from then
    redis.call('ZREM', base .. ':idx:s:' .. from, id)
    redis.call('ZREM', base .. ':idx:qs:' .. queue .. ':' .. from, id)
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
  if status == 'succeeded' then
    redis.call('HSET', sk, 'consecutiveFailures', 0)
  elseif status ~= 'cancelled' then
    redis.call('HINCRBY', sk, 'consecutiveFailures', 1)
  end
end
-- Ends a job in a terminal state (not for retries).
local function endJob(k, id, queue, from, status, now)
  redis.call('HSET', k, 'status', status, 'finishedAt', now, 'pid', '')
  move(id, queue, from, status)
  scheduleRunEnded(k, id, status, now)
end
-- Creates one job record: queued (with an outbox entry) or, with runAt, delayed. A replay of the same create
-- (a client library re-sending it after a reconnect) must not reset a job that has moved on: it is a no-op.
local function createJob(id, queue, spec, runAt, now)
  local k = jobKey(id)
  if redis.call('EXISTS', k) == 1 then return redis.call('HGET', k, 'status') end
  redis.call('HSET', k, 'v', 1, 'id', id, 'queue', queue, 'spec', spec, 'attempts', 0, 'createdAt', now, 'outputBytes', 0)
  redis.call('ZADD', base .. ':idx:all', 0, id)
  redis.call('ZADD', base .. ':idx:q:' .. queue, 0, id)
  redis.call('SADD', base .. ':queues', queue)
  if runAt ~= '' then
    redis.call('HSET', k, 'status', 'delayed', 'runAt', runAt)
    redis.call('ZADD', base .. ':delayed', runAt, id)
    move(id, queue, nil, 'delayed')
    return 'delayed'
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  redis.call('ZADD', base .. ':outbox', now, id)
  move(id, queue, nil, 'queued')
  return 'queued'
end
-- Cancels a job: at once when it waits, by flag when it runs (its runner stops it).
-- Returns cancelled | flagged | ended | missing, and the status it had.
local function cancelJob(id, now)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if not h[1] then return 'missing', '' end
  if h[1] == 'queued' or h[1] == 'delayed' then
    redis.call('ZREM', base .. ':outbox', id)
    redis.call('ZREM', base .. ':delayed', id)
    endJob(k, id, h[2], h[1], 'cancelled', now)
    return 'cancelled', 'cancelled'
  end
  if h[1] == 'running' then
    redis.call('HSET', k, 'cancelRequested', 1)
    return 'flagged', 'running'
  end
  return 'ended', h[1]
end
-- Puts a running job back for another attempt: now (queued + outbox) or later (delayed).
local function requeue(k, id, queue, now, delay)
  redis.call('ZREM', base .. ':leases', id)
  redis.call('HSET', k, 'pid', '', 'cancelRequested', '')
  if delay > 0 then
    redis.call('HSET', k, 'status', 'delayed', 'runAt', now + delay)
    redis.call('ZADD', base .. ':delayed', now + delay, id)
    move(id, queue, 'running', 'delayed')
    return 'delayed'
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  redis.call('ZADD', base .. ':outbox', now, id)
  move(id, queue, 'running', 'queued')
  return 'queued'
end
`;

/** ARGV: base, now, then (id, queue, spec, runAt|'') per job. A job with runAt is delayed, else queued. */
export const CREATE = `${PRELUDE}
local now = tonumber(ARGV[2])
for i = 3, #ARGV, 4 do
  createJob(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now)
end
return 1
`;

/**
 * ARGV: base, id, runnerId, now, leaseUntil, token. The one gate before a spawn: only a queued job can be claimed,
 * so a duplicate delivery finds it running or finished and is dropped. The token is unique per delivery: a claim
 * replayed by the client library after a reconnect (already applied before the connection dropped) finds its own
 * token and gets its claim back instead of being taken for a duplicate.
 * Returns {1, attempt, spec, outputBytes} or {0, currentStatus}.
 */
export const CLAIM = `${PRELUDE}
local id, runnerId, now, leaseUntil, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local k = jobKey(id)
local h = redis.call('HMGET', k, 'status', 'queue', 'spec', 'outputBytes', 'claimToken', 'attempts')
if h[1] == 'running' and h[5] == token then return {1, tonumber(h[6]), h[3], h[4] or '0'} end
if h[1] ~= 'queued' then return {0, h[1] or 'missing'} end
local attempt = redis.call('HINCRBY', k, 'attempts', 1)
redis.call('HSET', k, 'status', 'running', 'runnerId', runnerId, 'startedAt', now, 'pid', '',
  'exitCode', '', 'signal', '', 'error', '', 'finishedAt', '', 'claimToken', token)
redis.call('ZADD', base .. ':leases', leaseUntil, id)
redis.call('ZREM', base .. ':outbox', id)
move(id, h[2], 'queued', 'running')
return {1, attempt, h[3], h[4] or '0'}
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
 * ARGV: base, id, runnerId, attempt, now, outcome, exitCode, signal, error, outputBytes, truncated, retryDelayMs,
 * startedAt (when the process was spawned; '' if it never was), usage (JSON resource usage or '').
 * outcome is succeeded|failed|timed_out|cancelled|lost. A pending cancel turns any unsuccessful outcome into cancelled. A failed,
 * timed-out or (with onLost=retry) lost attempt is retried while attempts <= retries.
 * Returns {1, finalStatus} | {2, 'queued'|'delayed', queue} (retry) | {0, currentStatus} (not ours any more).
 */
export const FINISH = `${PRELUDE}
local id, runnerId, attempt, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local outcome, exitCode, signal, err = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local k = jobKey(id)
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts', 'queue', 'spec', 'cancelRequested')
if h[1] ~= 'running' or h[2] ~= runnerId or h[3] ~= attempt then return {0, h[1] or 'missing'} end
-- A cancel wins unless the command had already succeeded: report what really happened.
if h[6] == '1' and outcome ~= 'succeeded' then outcome = 'cancelled' end
if ARGV[13] ~= '' then redis.call('HSET', k, 'startedAt', ARGV[13]) end
redis.call('HSET', k, 'usage', ARGV[14])
attemptEntry(k, id, attempt, outcome, now, exitCode, signal, err)
redis.call('HSET', k, 'exitCode', exitCode, 'signal', signal, 'error', err, 'outputBytes', ARGV[10], 'truncated', ARGV[11])
local spec = cjson.decode(h[5])
local retryable = outcome == 'failed' or outcome == 'timed_out' or (outcome == 'lost' and spec.onLost == 'retry')
if retryable and tonumber(attempt) <= (tonumber(spec.retries) or 0) then
  -- A lost attempt is the runner's failure, not the job's: retry at once, as a lease expiry does.
  local delay = outcome == 'lost' and 0 or (tonumber(ARGV[12]) or 0)
  return {2, requeue(k, id, h[4], now, delay), h[4]}
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

/** ARGV: base, now, limit. Moves due delayed jobs to queued (+outbox). Returns {id, queue, ...}. */
export const PROMOTE = `${PRELUDE}
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGE', base .. ':delayed', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(due) do
  redis.call('ZREM', base .. ':delayed', id)
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] == 'delayed' then
    redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
    redis.call('ZADD', base .. ':outbox', now, id)
    move(id, h[2], 'delayed', 'queued')
    out[#out + 1] = id
    out[#out + 1] = h[2]
  end
end
return out
`;

/**
 * ARGV: base, now, limit. Running jobs whose lease expired (their runner stopped heartbeating) are lost:
 * retried at once when onLost=retry and attempts remain, else final `lost`. Returns {id, queue, status, ...}.
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
    redis.call('HSET', k, 'error', err)
    local status
    if h[5] ~= '1' and spec.onLost == 'retry' and tonumber(h[4]) <= (tonumber(spec.retries) or 0) then
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
 */
export const RENEW = `${PRELUDE}
local runnerId, leaseUntil = ARGV[2], ARGV[3]
local lost, cancel = {}, {}
for i = 4, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local h = redis.call('HMGET', jobKey(id), 'status', 'runnerId', 'attempts', 'cancelRequested')
  if h[1] == 'running' and h[2] == runnerId and h[3] == attempt then
    redis.call('ZADD', base .. ':leases', leaseUntil, id)
    if h[4] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
`;

/** ARGV: base, id1, id2, ... Deletes jobs that still wait (their submission failed and the client got an error). */
export const DISCARD = `${PRELUDE}
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local k = jobKey(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] == 'queued' or h[1] == 'delayed' then
    redis.call('DEL', k)
    redis.call('ZREM', base .. ':idx:all', id)
    redis.call('ZREM', base .. ':idx:q:' .. h[2], id)
    redis.call('ZREM', base .. ':idx:s:' .. h[1], id)
    redis.call('ZREM', base .. ':idx:qs:' .. h[2] .. ':' .. h[1], id)
    redis.call('ZREM', base .. ':outbox', id)
    redis.call('ZREM', base .. ':delayed', id)
    n = n + 1
  end
end
return n
`;
