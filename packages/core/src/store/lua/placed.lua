-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: group, limit. Of the first `limit` jobs of a placement group (most urgent, then oldest, first) that still
-- wait there, those of the most urgent priority among them; entries of
-- jobs that moved on are dropped, and the group is unlisted once empty.
--!include lib/waiting
local grp, limit = ARGV[1], tonumber(ARGV[2])
local gk = K.placementGroup(grp)
local out = {}
-- Only the most urgent of them: a runner picks one of these at random (so runners rarely race for one job), and a
-- less urgent job must not be picked while a more urgent one waits.
local rank
for _, id in ipairs(redis.call('ZRANGE', gk, 0, limit - 1)) do
  local h = redis.call('HMGET', K.job(id), 'status', 'placedIn')
  if h[1] == 'queued' and h[2] == grp then
    rank = rank or priorityRank(id)
    if priorityRank(id) == rank then out[#out + 1] = id end
  else
    redis.call('ZREM', gk, id)
  end
end
if redis.call('ZCARD', gk) == 0 then redis.call('HDEL', K.placements(), grp) end
return out
