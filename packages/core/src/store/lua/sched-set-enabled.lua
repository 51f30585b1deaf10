-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, then (name, enabled, nextRunAt|'') per schedule. All exist or nothing changes: returns missing names.
--!include lib/schedules
local now = ARGV[1]
local missing = {}
for i = 2, #ARGV, 3 do
  if redis.call('EXISTS', K.schedule(ARGV[i])) == 0 then missing[#missing + 1] = ARGV[i] end
end
if #missing > 0 then return missing end
for i = 2, #ARGV, 3 do
  local name, enabled, nextRunAt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', K.schedule(name), 'enabled', enabled, 'nextRunAt', nextRunAt, 'updatedAt', now)
  redis.call('HINCRBY', K.schedule(name), 'version', 1)
  setDue(name, enabled, nextRunAt)
end
return missing
