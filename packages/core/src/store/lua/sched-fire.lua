-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, then 12 per schedule: name, version, expectedNextRunAt, newNextRunAt|'', fire (1|0), misfired (1|0),
-- runAt|'' (a jittered start), missed (fire times missed, for a misfire), jobIds (comma-joined, one per replica), queue,
-- spec, meta (see CREATE). A fire lands only if the schedule still has that version and nextRunAt: so each fire time
-- produces at most one job however many schedulers computed it. A misfire and an overlap skip are recorded (unfired).
-- Returns 4 per schedule: name, outcome (fired|skipped|misfired|excluded|stale), job status, replaced running ids (comma-joined).
--!include lib/job-end
--!include lib/schedules
local now = ARGV[1]
local out = {}
for i = 2, #ARGV, 12 do
  local name, version, expected, nextRunAt, fire, misfired, runAt, missed, id, queue, spec, meta =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11]
  local k = K.schedule(name)
  local h = redis.call('HMGET', k, 'version', 'nextRunAt', 'enabled', 'def')
  local outcome, status, replaced = 'stale', '', ''
  if h[1] == version and h[2] == expected and h[3] == '1' then
    local def = cjson.decode(h[4])
    if fire ~= '1' then
      -- Not fired: by misfire policy, or the time fell on a date its calendar gained since it was computed.
      outcome = misfired == '1' and 'misfired' or 'excluded'
    elseif def.overlap == 'skip' and redis.call('SCARD', K.scheduleRunning(name)) > 0 then
      outcome = 'skipped'
      redis.call('HSET', k, 'lastSkippedAt', now)
      recordUnfired(name, 'skipped', expected, now, fireQueue(queue, spec, meta), { runningJobs = redis.call('SMEMBERS', K.scheduleRunning(name)) })
    else
      if def.overlap == 'replace' then
        local flagged = {}
        for _, rid in ipairs(redis.call('SMEMBERS', K.scheduleRunning(name))) do
          if cancelJob(rid, now) == 'flagged' then flagged[#flagged + 1] = rid end
        end
        replaced = table.concat(flagged, ',')
      end
      status = createFire(name, id, queue, spec, runAt, expected, now, meta)
      outcome = 'fired'
    end
    -- fired: whether run-once made a job for the missed times (an overlap skip may still have stopped it).
    if misfired == '1' then
      redis.call('HSET', k, 'lastMisfireAt', now)
      recordUnfired(name, 'misfired', expected, now, fireQueue(queue, spec, meta), { missed = tonumber(missed) or 1, fired = outcome == 'fired' })
    end
    redis.call('HSET', k, 'nextRunAt', nextRunAt)
    setDue(name, '1', nextRunAt)
  end
  out[#out + 1] = name
  out[#out + 1] = outcome
  out[#out + 1] = status
  out[#out + 1] = replaced
end
return out
