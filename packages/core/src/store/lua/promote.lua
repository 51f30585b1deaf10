-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, limit. Moves due delayed jobs to queued (+outbox). Returns {id, queue, ...}.
--!include lib/promote-job
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGE', K.delayed(), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(due) do
  local queue = promoteJob(id, now)
  if queue then
    out[#out + 1] = id
    out[#out + 1] = queue
  end
end
return out
