-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, holdUntil, limit. Takes due schedules for this scheduler: their due score moves to holdUntil
-- so other replicas leave them alone meanwhile (if this one dies, they come back after holdUntil).
-- Returns {name, nextRunAt, version, def, ...}.
--!include lib/schedules
local now, holdUntil, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local due = redis.call('ZRANGE', K.schedulesDue(), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, name in ipairs(due) do
  redis.call('ZADD', K.schedulesDue(), holdUntil, name)
  local h = redis.call('HMGET', K.schedule(name), 'nextRunAt', 'version', 'def')
  out[#out + 1] = name
  out[#out + 1] = h[1] or ''
  out[#out + 1] = h[2] or ''
  out[#out + 1] = h[3] or ''
end
return out
