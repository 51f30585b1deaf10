-- A delivery ended (delivered, or failed for good): the next one of its chain (same webhook, same job) may go.
local function finish(id, now)
  local h = redis.call('HMGET', K.delivery(id), 'chain')
  redis.call('ZREM', K.deliveriesDue(), id)
  if h[1] then
    redis.call('LREM', h[1], 1, id)
    local nxt = redis.call('LINDEX', h[1], 0)
    if nxt then redis.call('ZADD', K.deliveriesDue(), now, nxt) end
  end
  redis.call('PEXPIRE', K.delivery(id), DELIVERY_RETENTION_MS)
  redis.call('PEXPIRE', K.deliveryAttempts(id), DELIVERY_RETENTION_MS)
end
