--  ARGV: base, id, now, ok (1|0), attempt JSON|'' (none made), nextAt|'' (none: failed for good).
--!include lib/core
--!include lib/webhook-deliveries
local id, now, ok, attempt, nextAt = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('HGET', dkey(id), 'state') ~= 'pending' then return 0 end
if attempt ~= '' then redis.call('RPUSH', dkey(id) .. ':attempts', attempt) end
if ok == '1' then
  redis.call('HSET', dkey(id), 'state', 'delivered', 'nextAt', '')
  finish(id, now)
elseif nextAt ~= '' then
  redis.call('HSET', dkey(id), 'nextAt', nextAt)
  redis.call('ZADD', base .. ':wh:due', nextAt, id)
else
  redis.call('HSET', dkey(id), 'state', 'failed', 'nextAt', '')
  finish(id, now)
end
return 1
