-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: queue, status, before (epoch ms), from (exclusive lex bound: an id, or the id-time bound of before), limit.
-- Scans up to limit ids of the queue's status index below from, newest first, and deletes those that finished before
-- before. Returns the last id scanned ('' when the index has no more), then the deleted ids.
--!include lib/forget
local queue, status, before, from, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local ids = redis.call('ZREVRANGEBYLEX', K.indexQueueStatus(queue, status), '(' .. from, '-', 'LIMIT', 0, limit)
local out = { #ids == limit and ids[#ids] or '' }
for _, id in ipairs(ids) do
  local h = finishedFields(id)
  if h[1] == status and tonumber(h[5] or '') and tonumber(h[5]) < before and forgetFinished(id, h) then out[#out + 1] = id end
end
return out
