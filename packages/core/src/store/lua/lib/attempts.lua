-- known: the record's runnerId and startedAt when the caller read them.
local function attemptEntry(k, id, attempt, status, now, exitCode, signal, err, known)
  local h = known and { known.runnerId, known.startedAt } or redis.call('HMGET', k, 'runnerId', 'startedAt')
  local n = redis.call('RPUSH', K.jobAttempts(id), cjson.encode({
    attempt = tonumber(attempt), runnerId = h[1] or '', status = status,
    exitCode = exitCode ~= '' and tonumber(exitCode) or cjson.null,
    signal = signal ~= '' and signal or cjson.null, error = err ~= '' and err or cjson.null,
    startedAt = tonumber(h[2]) or 0, finishedAt = tonumber(now) }))
  if n > ATTEMPTS_KEPT then redis.call('LTRIM', K.jobAttempts(id), -ATTEMPTS_KEPT, -1) end
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
  local max = tonumber(spec.maxLost) or DEFAULT_MAX_LOST
  if n <= max then return true, '' end
  return false, ' (lost ' .. n .. ' times; maxLost is ' .. max .. ')'
end
