-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, leaseUntil, limit. Takes due deliveries (leased: if the sender dies they come back), 7 fields each.
--!include lib/webhook-deliveries
local now, leaseUntil, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', K.deliveriesDue(), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  redis.call('ZADD', K.deliveriesDue(), leaseUntil, id)
  local h = redis.call('HMGET', K.delivery(id), 'webhookId', 'url', 'body', 'eventType', 'createdAt', 'state')
  if h[6] == 'pending' then
    out[#out + 1] = id
    for k = 1, 5 do out[#out + 1] = h[k] or '' end
    out[#out + 1] = redis.call('LLEN', K.deliveryAttempts(id))
  else
    redis.call('ZREM', K.deliveriesDue(), id)
  end
end
return out
