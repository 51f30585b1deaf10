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
-- One read for the whole script: what finish decides on and what ending the job needs (see endJob).
local e = jobFields(k, {'status', 'runnerId', 'attempts', 'queue', 'spec', 'cancelRequested'}, END_FIELDS)
if e.status ~= 'running' or e.runnerId ~= runnerId or e.attempts ~= attempt then return {0, e.status or 'missing'} end
local queue = e.queue
local spec = cjson.decode(e.spec)
-- A cancel wins unless the command had already succeeded: report what really happened. A daemon has no success
-- of its own: stopping it is its end.
local cancelled = e.cancelRequested == '1'
if cancelled and (outcome ~= 'succeeded' or spec.type == 'daemon') then outcome = 'cancelled' end
if ARGV[12] ~= '' then e.startedAt = ARGV[12] end
-- The attempt's history entry is written only when the job goes on (a retry, a restart, or an error amended): the
-- attempt that ends the job is the record itself (JobStore.attempts reads it from there).
local function recordAttempt() attemptEntry(k, id, attempt, outcome, now, exitCode, signal, err, e) end
local n = countOutcome(k, outcome)
e.exitCode, e.signal, e.error = exitCode, signal, err
-- The attempt's fields: written with the end (one HSET), or before a retry or restart reads them.
local set = {'usage', ARGV[13], 'exitCode', exitCode, 'signal', signal, 'error', err, 'outputBytes', ARGV[9], 'truncated', ARGV[10]}
if ARGV[12] ~= '' then
  set[#set + 1] = 'startedAt'
  set[#set + 1] = ARGV[12]
end
local function again(status) return {2, status, queue} end
-- ARGV[14] '1': the failure is the job's end (refused by policy): every further attempt would be refused again.
local final = ARGV[14] == '1'
if spec.type == 'daemon' and not cancelled and not final then
  recordAttempt()
  redis.call('HSET', k, unpack(set))
  local status = daemonRestart(k, id, queue, spec, outcome, now)
  if status then return again(status) end
  redis.call('ZREM', K.leases(), id)
  endJob(k, id, queue, 'running', 'failed', now)
  return {1, 'failed'}
end
if not final and outcome == 'lost' then
  local retry, why = lostAgain(spec, n)
  -- A lost attempt is the runner's failure, not the job's: run it again at once, as a lease expiry does.
  recordAttempt()
  if retry then
    redis.call('HSET', k, unpack(set))
    return again(requeue(k, id, queue, now, 0))
  end
  if why ~= '' then
    e.error = err .. why
    set[8] = e.error
  end
elseif not final and (outcome == 'failed' or outcome == 'timed_out') and n <= (tonumber(spec.retries) or 0) then
  recordAttempt()
  redis.call('HSET', k, unpack(set))
  return again(requeue(k, id, queue, now, tonumber(ARGV[11]) or 0))
end
-- The record's HSET is the script's first write: over maxmemory Redis refuses a script whose first write may need
-- memory, so a full Redis refuses the whole end (the runner keeps the lease and retries) instead of letting it in
-- behind a ZREM, which needs none.
endJob(k, id, queue, 'running', outcome, now, e, set)
redis.call('ZREM', K.leases(), id)
return {1, outcome}
