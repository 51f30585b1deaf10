-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, limit. Jobs past their deadline that still wait (waiting, delayed, queued: nobody claimed them) end
-- expired, with their event. Returns {id, queue, ...} of those it ended.
--!include lib/job-end
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', K.expiring(), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  -- A running one leaves the set: its retries come back to it (requeue) and the claim checks them.
  redis.call('ZREM', K.expiring(), id)
  local queue = redis.call('HGET', K.job(id), 'queue')
  if expireJob(id, now) then
    out[#out + 1] = id
    out[#out + 1] = queue
  end
end
return out
