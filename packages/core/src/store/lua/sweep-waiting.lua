-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: waitedBefore, limit, queue. The queue's
-- jobs that have waited in its waiting set since before waitedBefore and are no longer in the outbox (their message
-- was confirmed by the broker long ago), up to limit, most urgent first: under store order (CLAIM) a delivery may
-- take any waiting job, so a claim a Redis failover lost leaves one job waiting with no message of its own. The
-- caller asks only when the broker holds no message for the queue (so the set holds only jobs whose messages runners
-- hold, and such strays) and republishes what this returns; a message too many is a spare, dropped at claim.
-- Entries of jobs no longer queued (ended by a path that left them listed) are removed on the way.
-- Returns {id, id, ...}.
local waitedBefore, limit, queue = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local w = K.queueWaiting(queue)
local out = {}
local entries = redis.call('ZRANGE', w, 0, limit - 1, 'WITHSCORES')
for j = 1, #entries, 2 do
  local id, score = entries[j], tonumber(entries[j + 1])
  -- The score is rank * 1e13 + the time it was listed (toOutbox); the time is below 1e13 (until the year 2286).
  local listedAt = score - math.floor(score / 1e13) * 1e13
  if redis.call('HGET', K.job(id), 'status') ~= 'queued' then
    redis.call('ZREM', w, id)
  elseif listedAt < waitedBefore and not redis.call('ZSCORE', K.outbox(), id) then
    out[#out + 1] = id
  end
end
return out
