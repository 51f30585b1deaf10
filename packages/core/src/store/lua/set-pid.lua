--  ARGV: base, id, runnerId, attempt, pid, startedAt. Records the pid only if this attempt still owns the job.
local k = K.job(ARGV[2])
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts')
if h[1] ~= 'running' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'pid', ARGV[5], 'startedAt', ARGV[6])
return 1
