--!include lib/dependencies
--!include lib/events
--!include lib/index
--!include lib/placement-groups
--!include lib/schedule-run
--!include lib/waiting
--!include lib/workflow-slots
local cancelJob
-- Ends a job in a terminal state (not for retries), and tells the jobs that wait for it.
local function endJob(k, id, queue, from, status, now)
  redis.call('HSET', k, 'status', status, 'finishedAt', now, 'pid', '')
  move(id, queue, from, status)
  redis.call('ZREM', K.expiring(), id)
  local e = redis.call('HMGET', k, 'attempts', 'exitCode', 'signal', 'error', 'runnerId', 'schedule', 'name', 'dedupeKey', 'wf')
  workflowSlotFreed(e[9], id, now)
  emit('job.' .. status, id, queue, { attempt = tonumber(e[1]) or 0, exitCode = tonumber(e[2]) or cjson.null,
    signal = (e[3] and e[3] ~= '') and e[3] or cjson.null, error = (e[4] and e[4] ~= '') and e[4] or cjson.null,
    runnerId = (e[5] and e[5] ~= '') and e[5] or cjson.null, schedule = e[6] or cjson.null, name = e[7] or cjson.null }, jobReport(k))
  scheduleRunEnded(k, id, status, now)
  if e[8] and e[8] ~= '' then
    local dd = K.queueDedupe(queue)
    if redis.call('HGET', dd, e[8]) == id then redis.call('HDEL', dd, e[8]) end
  end
  if e[7] and e[7] ~= '' then redis.call('SREM', K.named(e[7]), id) end
  -- Kept for the retention period (EXPIRE_FINISHED), oldest first.
  redis.call('ZADD', K.finished(), now, id)
  redis.call('ZADD', K.queueFinished(queue), now, id)
  -- Per-minute counters for the queue's "last hour" figures.
  local bucket = K.queueDone(queue, math.floor(tonumber(now) / 60000))
  redis.call('HINCRBY', bucket, status, 1)
  redis.call('PEXPIRE', bucket, 3660000)
  -- Dependents: '|s' needs this job to succeed, '|f' only to end.
  local dk = K.jobDependents(id)
  for _, entry in ipairs(redis.call('SMEMBERS', dk)) do
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
  redis.call('DEL', dk)
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
