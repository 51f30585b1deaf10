#!lua flags=allow-oom
-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: runnerId, leaseUntil, id1, attempt1, id2, attempt2, ... Renews the leases this runner still
-- holds. Returns {lostIds, cancelIds}: jobs it no longer owns (kill them) and jobs asked to cancel.
--
-- Flagged allow-oom: it only moves scores of members already there (ZADD XX), so it adds no memory, and it must
-- go on working while Redis is full: a runner holding an outcome it cannot record yet keeps its lease, so the job is
-- not taken for lost and run again. (Unflagged, Redis would refuse the ZADD at maxmemory.) Needs Redis 7.
local runnerId, leaseUntil = ARGV[1], ARGV[2]
local lost, cancel = {}, {}
for i = 3, #ARGV, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local h = redis.call('HMGET', K.job(id), 'status', 'runnerId', 'attempts', 'cancelRequested')
  if h[1] == 'running' and h[2] == runnerId and h[3] == attempt then
    redis.call('ZADD', K.leases(), 'XX', leaseUntil, id)
    if h[4] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
