-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, runnerId, attempt, now, runningMs, alertAfterMs. The attempt has run past its alertAfterMs: records
-- slowAt and emits job.slow, only if this attempt still owns the job. Returns 1 if it did.
--!include lib/events
local id = ARGV[1]
local k = K.job(id)
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts', 'queue')
if h[1] ~= 'running' or h[2] ~= ARGV[2] or h[3] ~= ARGV[3] then return 0 end
redis.call('HSET', k, 'slowAt', ARGV[4])
emit('job.slow', id, h[4], { attempt = tonumber(ARGV[3]), runnerId = ARGV[2], runningMs = tonumber(ARGV[5]), alertAfterMs = tonumber(ARGV[6]) })
return 1
