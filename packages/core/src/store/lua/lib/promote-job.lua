--!include lib/index
--!include lib/waiting
--  Moves a delayed job to queued (+outbox), due or not. Returns its queue, or nil and the status it has (or 'missing').
local function promoteJob(id, now)
  redis.call('ZREM', K.delayed(), id)
  local k = K.job(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] ~= 'delayed' then return nil, h[1] or 'missing' end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  toOutbox(id, h[2], now)
  move(id, h[2], 'delayed', 'queued')
  return h[2]
end
