-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, now, ok (1|0), attempt JSON|'' (none made), nextAt|'' (none: failed for good).
--!include lib/webhook-deliveries
local id, now, ok, attempt, nextAt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', K.delivery(id), 'state') ~= 'pending' then return 0 end
if attempt ~= '' then redis.call('RPUSH', K.deliveryAttempts(id), attempt) end
if ok == '1' then
  redis.call('HSET', K.delivery(id), 'state', 'delivered', 'nextAt', '')
  finish(id, now)
elseif nextAt ~= '' then
  redis.call('HSET', K.delivery(id), 'nextAt', nextAt)
  redis.call('ZADD', K.deliveriesDue(), nextAt, id)
else
  redis.call('HSET', K.delivery(id), 'state', 'failed', 'nextAt', '')
  finish(id, now)
end
return 1
