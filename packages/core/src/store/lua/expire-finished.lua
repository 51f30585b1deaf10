-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: cutoff (epoch ms), limit, maxPerQueue, needArchived (1|0). Retention: finished jobs that ended before the cutoff, and the
-- oldest beyond maxPerQueue in each queue, are deleted with their output, attempts and index entries, so Redis
-- memory stays bounded however long Drover runs. Returns how many it deleted (call again while it returns limit).
--!include lib/forget
local cutoff, limit, maxPerQueue, needArchived = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local n = 0
local function forget(id)
  local h = finishedFields(id)
  -- With an archive, a job leaves Redis only once it is in there.
  if needArchived and h[1] and h[4] ~= '1' then return end
  if forgetFinished(id, h) then n = n + 1 end
end
for _, id in ipairs(redis.call('ZRANGE', K.finished(), '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, limit)) do forget(id) end
for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
  local over = redis.call('ZCARD', K.queueFinished(q)) - maxPerQueue
  if over > 0 and n < limit then
    for _, id in ipairs(redis.call('ZRANGE', K.queueFinished(q), 0, math.min(over, limit - n) - 1)) do forget(id) end
  end
end
return n
