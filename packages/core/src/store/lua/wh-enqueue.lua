-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, stream, group, then per event: eventId, n, and n deliveries of 6 fields (id, webhookId, url,
-- eventType, jobId|'', body). Records the deliveries, queues each behind earlier ones of its chain (per webhook
-- and job, so a receiver sees a job's events in order), and acknowledges the events, in one step.
--!include lib/webhook-deliveries
local now, stream, group = ARGV[1], ARGV[2], ARGV[3]
local i = 4
local acked = {}
while i <= #ARGV do
  local eventId, n = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    local id, webhookId, url, etype, jobId, body = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    i = i + 6
    local chain = K.deliveryChain(webhookId, jobId ~= '' and jobId or '-')
    redis.call('HSET', K.delivery(id), 'id', id, 'webhookId', webhookId, 'url', url, 'eventId', eventId, 'eventType', etype,
      'jobId', jobId, 'body', body, 'state', 'pending', 'createdAt', now, 'chain', chain)
    local idx = webhookId == 'callback' and (K.jobCallbacks(jobId)) or (K.webhookDeliveries(webhookId))
    redis.call('ZADD', idx, now, id)
    redis.call('ZREMRANGEBYRANK', idx, 0, -(WEBHOOK_DELIVERIES_KEPT + 1))
    if redis.call('RPUSH', chain, id) == 1 then redis.call('ZADD', K.deliveriesDue(), now, id) end
  end
  acked[#acked + 1] = eventId
end
if #acked > 0 then redis.call('XACK', stream, group, unpack(acked)) end
return #acked
