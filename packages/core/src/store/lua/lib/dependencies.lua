--!include lib/index
--!include lib/waiting
-- Its dependencies ended: a waiting job goes on to queued (or delayed, if it also has a start time ahead).
local function dependenciesMet(id, now)
  local k = K.job(id)
  local h = redis.call('HMGET', k, 'queue', 'runAt')
  if h[2] and h[2] ~= '' and tonumber(h[2]) > tonumber(now) then
    redis.call('HSET', k, 'status', 'delayed')
    redis.call('ZADD', K.delayed(), h[2], id)
    move(id, h[1], 'waiting', 'delayed')
    return
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  move(id, h[1], 'waiting', 'queued')
  makeReady(id, h[1], now)
end
-- Registers a job on the unfinished jobs (and running schedule runs) of each name; returns how many it waits for.
local function waitForNames(id, names)
  local pending = 0
  for _, name in ipairs(names) do
    for _, mid in ipairs(redis.call('SUNION', K.named(name), K.scheduleRunning(name))) do
      local st = redis.call('HGET', K.job(mid), 'status')
      if mid ~= id and st and not TERMINAL[st] then
        pending = pending + redis.call('SADD', K.jobDependents(mid), id .. '|f')
      end
    end
  end
  return pending
end
-- A job created with recheck (depNames) looks at its names again once what it waited for ended: jobs of those names
-- that started meanwhile (a task started again) hold it too, as Meproc's deps do. True when it waits on.
local function waitsAgain(id)
  local names = redis.call('HGET', K.job(id), 'depNames')
  if not names then return false end
  local n = waitForNames(id, cjson.decode(names))
  if n == 0 then return false end
  redis.call('HSET', K.job(id), 'depsPending', n)
  return true
end
-- Registers a new job's dependencies. meta.after: job ids that must succeed; meta.afterNames: names (schedules,
-- named jobs) whose unfinished jobs must end first; a name with nothing unfinished does not block; meta.afterEnd:
-- job ids that must end, whatever their outcome (a restart: the new copy starts once the old one stopped).
-- Returns the number still pending, or nil and a reason when a dependency already failed.
local function addDependencies(id, meta)
  local pending = 0
  for _, dep in ipairs(meta.after or {}) do
    local st = redis.call('HGET', K.job(dep), 'status')
    if st and TERMINAL[st] and st ~= 'succeeded' then return nil, 'dependency ' .. dep .. ' ended ' .. st end
    if st and st ~= 'succeeded' then pending = pending + redis.call('SADD', K.jobDependents(dep), id .. '|s') end
  end
  pending = pending + waitForNames(id, meta.afterNames or {})
  for _, dep in ipairs(meta.afterEnd or {}) do
    local st = redis.call('HGET', K.job(dep), 'status')
    if dep ~= id and st and not TERMINAL[st] then pending = pending + redis.call('SADD', K.jobDependents(dep), id .. '|f') end
  end
  return pending
end
