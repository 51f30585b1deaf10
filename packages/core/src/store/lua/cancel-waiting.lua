-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: queue, now, limit, statuses (comma-joined: queued, delayed, waiting). Cancels up to `limit` jobs of
-- the queue that have not started. Returns how many it cancelled (call again while it returns `limit`).
--!include lib/job-end
local queue, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for status in string.gmatch(ARGV[4], '[^,]+') do
  local ids = redis.call('ZRANGE', K.indexQueueStatus(queue, status), 0, limit - #out - 1)
  for _, id in ipairs(ids) do
    if cancelJob(id, now) == 'cancelled' then out[#out + 1] = id end
  end
  if #out >= limit then break end
end
return out
