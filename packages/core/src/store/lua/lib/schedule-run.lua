--!include lib/events
-- A job of a schedule reached a terminal state: update what the schedule shows about its last run.
-- e: the job's schedule and startedAt fields.
local function scheduleRunEnded(id, q, status, now, e)
  local sched, startedAt = e.schedule, e.startedAt
  if not sched or sched == '' then return end
  local sk = K.schedule(sched)
  redis.call('SREM', K.scheduleRunning(sched), id)
  if redis.call('EXISTS', sk) == 0 then return end
  redis.call('HSET', sk, 'lastState', status, 'lastJobId', id)
  if startedAt and startedAt ~= '' then redis.call('HSET', sk, 'lastDurationMs', tonumber(now) - tonumber(startedAt)) end
  if status == 'succeeded' then
    redis.call('HSET', sk, 'consecutiveFailures', 0)
    if redis.call('HGET', sk, 'alerting') == '1' then
      redis.call('HSET', sk, 'alerting', 0)
      emit('schedule.recovered', id, q, { schedule = sched })
    end
  elseif status ~= 'cancelled' then
    local n = redis.call('HINCRBY', sk, 'consecutiveFailures', 1)
    -- qschedule's alert threshold: once when the run of failures reaches it.
    local limit = tonumber(cjson.decode(redis.call('HGET', sk, 'def') or '{}').alertAfterFailures)
    if limit and n == limit then
      redis.call('HSET', sk, 'alerting', 1)
      emit('schedule.failing', id, q, { schedule = sched, consecutiveFailures = n })
    end
  end
end
