--!include lib/events
--!include lib/index
--!include lib/waiting
--!include lib/workflow-slots
-- Puts a running job back for another attempt: now (queued + outbox) or later (delayed).
local function requeue(k, id, queue, now, delay)
  redis.call('ZREM', K.leases(), id)
  local r = redis.call('HMGET', k, 'wf', 'attempts')
  workflowSlotFreed(r[1], id, now)
  redis.call('HSET', k, 'pid', '', 'cancelRequested', '')
  emit('job.retried', id, queue, { attempt = tonumber(r[2]) or 0, delayMs = delay })
  -- A retry of a job with a deadline is swept at the deadline too, should it still wait then.
  local deadline = redis.call('HGET', k, 'expiresAt')
  if deadline then redis.call('ZADD', K.expiring(), deadline, id) end
  if delay > 0 then
    redis.call('HSET', k, 'status', 'delayed', 'runAt', now + delay)
    redis.call('ZADD', K.delayed(), now + delay, id)
    move(id, queue, 'running', 'delayed')
    return 'delayed'
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  toOutbox(id, queue, now)
  move(id, queue, 'running', 'queued')
  return 'queued'
end
-- A daemon's run ended (not stopped): start it again. After a lost run at once, uncounted (the runner failed, not
-- the daemon). After its own exit: intervalMs, doubled for every short run in a row up to restartBackoffMaxMs; a
-- run as long as the cap (at most DAEMON_STABLE_RUN_MS) starts the backoff over. Returns the new status, or nil once
-- maxRestarts restarts were made (the error says so; the caller ends the job).
local function daemonRestart(k, id, queue, spec, outcome, now)
  if outcome == 'lost' then return requeue(k, id, queue, now, 0) end
  local r = redis.call('HMGET', k, 'restarts', 'shortRuns', 'startedAt', 'error', 'exitCode')
  local restarts = tonumber(r[1]) or 0
  local max = tonumber(spec.maxRestarts)
  if max and restarts >= max then
    local last = outcome .. ((r[5] and r[5] ~= '') and (' with exit code ' .. r[5]) or '') .. ((r[4] and r[4] ~= '') and (': ' .. r[4]) or '')
    redis.call('HSET', k, 'error', 'the daemon was restarted ' .. restarts .. ' times (maxRestarts ' .. max .. '); its last run ended ' .. last)
    return nil
  end
  local interval = tonumber(spec.intervalMs) or DEFAULT_DAEMON_INTERVAL_MS
  local cap = math.max(interval, tonumber(spec.restartBackoffMaxMs) or DEFAULT_RESTART_BACKOFF_MAX_MS)
  local ran = now - (tonumber(r[3]) or now)
  local short = 0
  if ran < math.min(cap, DAEMON_STABLE_RUN_MS) then short = (tonumber(r[2]) or 0) + 1 end
  local delay = math.min(cap, interval * 2 ^ math.min(math.max(short - 1, 0), 40))
  redis.call('HSET', k, 'restarts', restarts + 1, 'shortRuns', short)
  return requeue(k, id, queue, now, delay)
end
