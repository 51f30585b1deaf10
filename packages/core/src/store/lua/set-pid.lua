-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, runnerId, attempt, pid, startedAt. Records the pid only if this attempt still owns the job.
local k = K.job(ARGV[1])
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts')
if h[1] ~= 'running' or h[2] ~= ARGV[2] or h[3] ~= ARGV[3] then return 0 end
redis.call('HSET', k, 'pid', ARGV[4], 'startedAt', ARGV[5])
return 1
