-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, newId. Marks a job as run again by newId unless it was (or is gone); returns 1 if it marked it.
local k = K.job(ARGV[1])
if redis.call('EXISTS', k) == 0 then return 0 end
return redis.call('HSETNX', k, 'retriedAs', ARGV[2])
