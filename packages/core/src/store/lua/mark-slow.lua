-- ARGV: base, id, runnerId, attempt, now, runningMs, alertAfterMs. The attempt has run past its alertAfterMs: records
-- slowAt and emits job.slow, only if this attempt still owns the job. Returns 1 if it did.
--!include lib/events
local id = ARGV[2]
local k = K.job(id)
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts', 'queue')
if h[1] ~= 'running' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'slowAt', ARGV[5])
emit('job.slow', id, h[4], { attempt = tonumber(ARGV[4]), runnerId = ARGV[3], runningMs = tonumber(ARGV[6]), alertAfterMs = tonumber(ARGV[7]) })
return 1
