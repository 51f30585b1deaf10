-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: name, kill (1|0), now. Returns {found, cancelled ids..., '|', flagged running ids...}.
--!include lib/job-end
--!include lib/schedules
local name, kill, now = ARGV[1], ARGV[2], ARGV[3]
local k = K.schedule(name)
if redis.call('EXISTS', k) == 0 then return {0} end
local out = {1}
local flagged = {}
if kill == '1' then
  for _, id in ipairs(redis.call('SMEMBERS', K.scheduleRunning(name))) do
    local action = cancelJob(id, now)
    if action == 'cancelled' then out[#out + 1] = id elseif action == 'flagged' then flagged[#flagged + 1] = id end
  end
end
out[#out + 1] = '|'
for _, id in ipairs(flagged) do out[#out + 1] = id end
redis.call('DEL', k, K.scheduleRunning(name), K.scheduleRuns(name), K.scheduleUnfired(name))
redis.call('ZREM', K.schedules(), name)
redis.call('ZREM', K.schedulesDue(), name)
return out
