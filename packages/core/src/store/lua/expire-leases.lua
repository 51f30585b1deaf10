-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, limit. Running jobs whose lease expired (their runner stopped heartbeating) are lost: run again
-- at once when onLost=retry and the job's losses are within maxLost (a daemon always), else final `lost`.
-- Returns {id, queue, status, ...}.
--!include lib/attempts
--!include lib/job-end
--!include lib/requeue
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local expired = redis.call('ZRANGE', K.leases(), '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', K.leases(), id)
  local k = K.job(id)
  local h = redis.call('HMGET', k, 'status', 'queue', 'spec', 'attempts', 'cancelRequested')
  if h[1] == 'running' then
    local spec = cjson.decode(h[3])
    local err = 'lease expired: the runner stopped heartbeating'
    attemptEntry(k, id, h[4], 'lost', now, '', '', err)
    local again, why = true, ''
    local n = countOutcome(k, 'lost')
    if spec.type ~= 'daemon' then again, why = lostAgain(spec, n) end
    redis.call('HSET', k, 'error', err .. why)
    local status
    if h[5] ~= '1' and again then
      status = requeue(k, id, h[2], now, 0)
    else
      status = h[5] == '1' and 'cancelled' or 'lost'
      endJob(k, id, h[2], 'running', status, now)
    end
    out[#out + 1] = id
    out[#out + 1] = h[2]
    out[#out + 1] = status
  end
end
return out
