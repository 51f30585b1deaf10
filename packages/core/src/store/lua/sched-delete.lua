--  ARGV: base, name, kill (1|0), now. Returns {found, cancelled ids..., '|', flagged running ids...}.
--!include lib/core
--!include lib/job-end
--!include lib/schedules
local name, kill, now = ARGV[2], ARGV[3], ARGV[4]
local k = schedKey(name)
if redis.call('EXISTS', k) == 0 then return {0} end
local out = {1}
local flagged = {}
if kill == '1' then
  for _, id in ipairs(redis.call('SMEMBERS', k .. ':running')) do
    local action = cancelJob(id, now)
    if action == 'cancelled' then out[#out + 1] = id elseif action == 'flagged' then flagged[#flagged + 1] = id end
  end
end
out[#out + 1] = '|'
for _, id in ipairs(flagged) do out[#out + 1] = id end
redis.call('DEL', k, k .. ':running', k .. ':runs', k .. ':unfired')
redis.call('ZREM', base .. ':schedules', name)
redis.call('ZREM', base .. ':sched-due', name)
return out
