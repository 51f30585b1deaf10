--  ARGV: base, now, limit. Moves due delayed jobs to queued (+outbox). Returns {id, queue, ...}.
--!include lib/promote-job
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
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
