--!include lib/core
local function dkey(id) return base .. ':wh:d:' .. id end
-- A delivery ended (delivered, or failed for good): the next one of its chain (same webhook, same job) may go.
local function finish(id, now)
  local h = redis.call('HMGET', dkey(id), 'chain')
  redis.call('ZREM', base .. ':wh:due', id)
  if h[1] then
    redis.call('LREM', h[1], 1, id)
    local nxt = redis.call('LINDEX', h[1], 0)
    if nxt then redis.call('ZADD', base .. ':wh:due', now, nxt) end
  end
  redis.call('PEXPIRE', dkey(id), DELIVERY_RETENTION_MS)
  redis.call('PEXPIRE', dkey(id) .. ':attempts', DELIVERY_RETENTION_MS)
end
