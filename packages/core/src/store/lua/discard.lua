-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id1, id2, ... Deletes jobs that still wait (their submission failed and the client got an error).
--!include lib/placement-groups
--!include lib/waiting
local n = 0
for i = 1, #ARGV do
  local id = ARGV[i]
  local k = K.job(id)
  local h = redis.call('HMGET', k, 'status', 'queue')
  if h[1] == 'queued' or h[1] == 'delayed' or h[1] == 'waiting' then
    -- Unhooked from its dedupe key and name; entries in the dependents sets of its dependencies are skipped later.
    local x = redis.call('HMGET', k, 'dedupeKey', 'name')
    if x[1] and redis.call('HGET', K.queueDedupe(h[2]), x[1]) == id then redis.call('HDEL', K.queueDedupe(h[2]), x[1]) end
    if x[2] then redis.call('SREM', K.named(x[2]), id) end
    unplace(k, id)
    redis.call('DEL', k, K.jobAttempts(id))
    redis.call('ZREM', K.indexAll(), id)
    redis.call('ZREM', K.indexQueue(h[2]), id)
    redis.call('ZREM', K.indexStatus(h[1]), id)
    redis.call('ZREM', K.indexQueueStatus(h[2], h[1]), id)
    notWaiting(id, h[2])
    redis.call('ZREM', K.delayed(), id)
    redis.call('ZREM', K.expiring(), id)
    n = n + 1
  end
end
return n
