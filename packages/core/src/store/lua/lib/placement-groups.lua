-- Placement: a queued job that a runner declined (it does not satisfy the job's constraints) waits in its group,
-- placement:<group> (a zset by when it came), the group listed in 'placements' (group -> {queue, constraints}) for
-- runners that satisfy them to take it from. Takes a job out of its group (claimed, cancelled, deleted).
local function unplace(k, id)
  local grp = redis.call('HGET', k, 'placedIn')
  if not grp or grp == '' then return end
  local gk = K.placementGroup(grp)
  redis.call('ZREM', gk, id)
  if redis.call('ZCARD', gk) == 0 then redis.call('HDEL', K.placements(), grp) end
  redis.call('HDEL', k, 'placedIn', 'placedAt', 'placedBy', 'placementDeclines')
end
