--!include lib/core
local function move(id, queue, from, to)
  if from then
    redis.call('ZREM', base .. ':idx:s:' .. from, id)
    redis.call('ZREM', base .. ':idx:qs:' .. queue .. ':' .. from, id)
    -- A job that stops being queued stops waiting for a delivery (see toOutbox).
    if from == 'queued' then redis.call('ZREM', base .. ':q:' .. queue .. ':waiting', id) end
  end
  redis.call('ZADD', base .. ':idx:s:' .. to, 0, id)
  redis.call('ZADD', base .. ':idx:qs:' .. queue .. ':' .. to, 0, id)
end
