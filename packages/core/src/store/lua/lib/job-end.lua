--!include lib/dependencies
--!include lib/events
--!include lib/index
--!include lib/placement-groups
--!include lib/schedule-run
--!include lib/waiting
--!include lib/workflow-slots
local cancelJob
-- The fields of a record that ending a job reads; finish reads them with its own in one HMGET and hands them on.
local END_FIELDS = {'attempts', 'exitCode', 'signal', 'error', 'runnerId', 'schedule', 'name', 'dedupeKey', 'wf',
  'progress', 'result', 'startedAt', 'expiresAt'}
-- One HMGET of the fields named in any of the lists, returned by name (absent fields are nil).
local function jobFields(k, ...)
  local names, seen = {}, {}
  for _, list in ipairs({...}) do
    for _, n in ipairs(list) do
      if not seen[n] then
        seen[n] = true
        names[#names + 1] = n
      end
    end
  end
  local values = redis.call('HMGET', k, unpack(names))
  local e = {}
  for i, n in ipairs(names) do
    if values[i] then e[n] = values[i] end
  end
  return e
end
local function present(v)
  if v and v ~= '' then return v end
  return cjson.null
end
-- What a job reported about itself (the runner stores both as JSON text), as members of its final event.
local function reportOf(e)
  local parts = {}
  if e.progress then parts[#parts + 1] = '"progress":' .. e.progress end
  if e.result then parts[#parts + 1] = '"result":' .. e.result end
  return table.concat(parts, ',')
end
-- Ends a job in a terminal state (not for retries), and tells the jobs that wait for it. known: the END_FIELDS as
-- they are now, when the caller read them (else they are read here); set: more fields for the same HSET.
local function endJob(k, id, queue, from, status, now, known, set)
  local fields = set or {}
  for _, v in ipairs({'status', status, 'finishedAt', now, 'pid', ''}) do fields[#fields + 1] = v end
  redis.call('HSET', k, unpack(fields))
  move(id, queue, from, status)
  local e = known or jobFields(k, END_FIELDS)
  if e.expiresAt then redis.call('ZREM', K.expiring(), id) end
  workflowSlotFreed(e.wf, id, now)
  emit('job.' .. status, id, queue, { attempt = tonumber(e.attempts) or 0, exitCode = tonumber(e.exitCode) or cjson.null,
    signal = present(e.signal), error = present(e.error), runnerId = present(e.runnerId), schedule = e.schedule or cjson.null,
    name = e.name or cjson.null }, reportOf(e))
  scheduleRunEnded(id, queue, status, now, e)
  if e.dedupeKey and e.dedupeKey ~= '' then
    local dd = K.queueDedupe(queue)
    if redis.call('HGET', dd, e.dedupeKey) == id then redis.call('HDEL', dd, e.dedupeKey) end
  end
  if e.name and e.name ~= '' then redis.call('SREM', K.named(e.name), id) end
  -- Kept for the retention period (EXPIRE_FINISHED), oldest first.
  redis.call('ZADD', K.finished(), now, id)
  redis.call('ZADD', K.queueFinished(queue), now, id)
  -- Per-minute counters for the queue's "last hour" figures; the expiry is set when a bucket's field is new.
  local bucket = K.queueDone(queue, math.floor(tonumber(now) / 60000))
  if redis.call('HINCRBY', bucket, status, 1) == 1 then redis.call('PEXPIRE', bucket, 3660000) end
  -- Dependents: '|s' needs this job to succeed, '|f' only to end.
  local dk = K.jobDependents(id)
  local dependents = redis.call('SMEMBERS', dk)
  for _, entry in ipairs(dependents) do
    local did, kind = string.match(entry, '^(.-)|(.)$')
    if did and redis.call('HGET', K.job(did), 'status') == 'waiting' then
      if kind == 's' and status ~= 'succeeded' then
        redis.call('HSET', K.job(did), 'error', 'dependency ' .. id .. ' ended ' .. status)
        cancelJob(did, now)
      elseif redis.call('HINCRBY', K.job(did), 'depsPending', -1) <= 0 and not waitsAgain(did) then
        dependenciesMet(did, now)
      end
    end
  end
  if #dependents > 0 then redis.call('DEL', dk) end
end
-- Cancels a job: at once when it waits, by flag when it runs (its runner stops it).
-- Returns cancelled | flagged | ended | missing, and the status it had.
cancelJob = function(id, now)
  local k = K.job(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if not h[1] then return 'missing', '' end
  if h[1] == 'queued' or h[1] == 'delayed' or h[1] == 'waiting' then
    notWaiting(id, h[2])
    redis.call('ZREM', K.delayed(), id)
    redis.call('ZREM', K.queueParked(h[2]), id)
    redis.call('ZREM', K.queueReleasing(h[2]), id)
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
  local k = K.job(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] ~= 'queued' and h[1] ~= 'delayed' and h[1] ~= 'waiting' then return false end
  notWaiting(id, h[2])
  redis.call('ZREM', K.delayed(), id)
  redis.call('ZREM', K.queueParked(h[2]), id)
  redis.call('ZREM', K.queueReleasing(h[2]), id)
  unplace(k, id)
  redis.call('HSET', k, 'error', 'its deadline (expiresAt) passed before an attempt started')
  endJob(k, id, h[2], h[1], 'expired', now)
  return true
end
