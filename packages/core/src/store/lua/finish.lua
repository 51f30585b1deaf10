-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, runnerId, attempt, now, outcome, exitCode, signal, error, outputBytes, truncated, retryDelayMs,
-- startedAt (when the process was spawned; '' if it never was), usage (JSON resource usage or ''), final (1: no retry, no daemon restart).
-- outcome is succeeded|failed|timed_out|cancelled|lost. A pending cancel turns any unsuccessful outcome into cancelled.
-- A failed or timed-out attempt is retried while the job's failures <= retries; a lost one (with onLost=retry) while
-- its losses <= maxLost: two budgets, counted in the record (failureCount, lostCount). A daemon is restarted instead,
-- with backoff (daemonRestart).
-- Returns {1, finalStatus} | {2, 'queued'|'delayed', queue} (retry) | {0, currentStatus} (not ours any more).
--!include lib/attempts
--!include lib/job-end
--!include lib/requeue
local id, runnerId, attempt, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local outcome, exitCode, signal, err = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local k = K.job(id)
local h = redis.call('HMGET', k, 'status', 'runnerId', 'attempts', 'queue', 'spec', 'cancelRequested')
if h[1] ~= 'running' or h[2] ~= runnerId or h[3] ~= attempt then return {0, h[1] or 'missing'} end
local spec = cjson.decode(h[5])
-- A cancel wins unless the command had already succeeded: report what really happened. A daemon has no success
-- of its own: stopping it is its end.
if h[6] == '1' and (outcome ~= 'succeeded' or spec.type == 'daemon') then outcome = 'cancelled' end
if ARGV[12] ~= '' then redis.call('HSET', k, 'startedAt', ARGV[12]) end
redis.call('HSET', k, 'usage', ARGV[13])
attemptEntry(k, id, attempt, outcome, now, exitCode, signal, err)
local n = countOutcome(k, outcome)
redis.call('HSET', k, 'exitCode', exitCode, 'signal', signal, 'error', err, 'outputBytes', ARGV[9], 'truncated', ARGV[10])
-- ARGV[14] '1': the failure is the job's end (refused by policy): every further attempt would be refused again.
local final = ARGV[14] == '1'
if spec.type == 'daemon' and h[6] ~= '1' and not final then
  local status = daemonRestart(k, id, h[4], spec, outcome, now)
  if status then return {2, status, h[4]} end
  redis.call('ZREM', K.leases(), id)
  endJob(k, id, h[4], 'running', 'failed', now)
  return {1, 'failed'}
end
if not final and outcome == 'lost' then
  local again, why = lostAgain(spec, n)
  -- A lost attempt is the runner's failure, not the job's: run it again at once, as a lease expiry does.
  if again then return {2, requeue(k, id, h[4], now, 0), h[4]} end
  if why ~= '' then redis.call('HSET', k, 'error', err .. why) end
elseif not final and (outcome == 'failed' or outcome == 'timed_out') and n <= (tonumber(spec.retries) or 0) then
  return {2, requeue(k, id, h[4], now, tonumber(ARGV[11]) or 0), h[4]}
end
redis.call('ZREM', K.leases(), id)
endJob(k, id, h[4], 'running', outcome, now)
return {1, outcome}
