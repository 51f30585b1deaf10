--!include lib/events
-- A job of a schedule reached a terminal state: update what the schedule shows about its last run.
local function scheduleRunEnded(k, id, status, now)
  local h = redis.call('HMGET', k, 'schedule', 'startedAt')
  if not h[1] or h[1] == '' then return end
  local sk = K.schedule(h[1])
  redis.call('SREM', K.scheduleRunning(h[1]), id)
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
