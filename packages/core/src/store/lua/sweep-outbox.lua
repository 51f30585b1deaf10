-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, staleBefore, limit. Queued jobs still in the outbox (publish never confirmed, or the
-- publisher died) are handed out again for republishing; their score is bumped so replicas don't all pick them.
local now, staleBefore, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stale = redis.call('ZRANGE', K.outbox(), '-inf', staleBefore, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(stale) do
  local h = redis.call('HMGET', K.job(id), 'status', 'queue')
  if h[1] == 'queued' then
    redis.call('ZADD', K.outbox(), now, id)
    out[#out + 1] = id
    out[#out + 1] = h[2]
  else
    redis.call('ZREM', K.outbox(), id)
  end
end
return out
