--  Deletes a finished job's record, output, attempts and index entries; false (nothing deleted) for an unfinished one.
local function forgetFinished(id, h)
  local k = K.job(id)
  redis.call('ZREM', K.finished(), id)
  if h[2] then redis.call('ZREM', K.queueFinished(h[2]), id) end
  if not h[1] or not TERMINAL[h[1]] then return false end
  redis.call('DEL', k, K.jobAttempts(id), K.jobLog(id), K.jobDependents(id))
  redis.call('ZREM', K.indexAll(), id)
  redis.call('ZREM', K.indexQueue(h[2]), id)
  redis.call('ZREM', K.indexStatus(h[1]), id)
  redis.call('ZREM', K.indexQueueStatus(h[2], h[1]), id)
  if h[3] then redis.call('ZREM', K.scheduleRuns(h[3]), id) end
  return true
end
local function finishedFields(id) return redis.call('HMGET', K.job(id), 'status', 'queue', 'schedule', 'archived', 'finishedAt') end
