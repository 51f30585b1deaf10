-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: name, def, enabled, nextRunAt|'', now, mode (create|update). Returns 1, or 0 (exists / missing).
--!include lib/schedules
local name, def, enabled, nextRunAt, now, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local k = K.schedule(name)
local exists = redis.call('EXISTS', k) == 1
if (mode == 'create' and exists) or (mode == 'update' and not exists) then return 0 end
if mode == 'create' then redis.call('HSET', k, 'createdAt', now, 'consecutiveFailures', 0) end
redis.call('HSET', k, 'def', def, 'enabled', enabled, 'nextRunAt', nextRunAt, 'updatedAt', now)
-- A fire computed against the old definition must not land: bump the version it checks.
redis.call('HINCRBY', k, 'version', 1)
redis.call('ZADD', K.schedules(), 0, name)
setDue(name, enabled, nextRunAt)
return 1
