--!include lib/events
--!include lib/job-create
local function setDue(name, enabled, nextRunAt)
  if enabled == '1' and nextRunAt ~= '' then
    redis.call('ZADD', K.schedulesDue(), nextRunAt, name)
  else
    redis.call('ZREM', K.schedulesDue(), name)
  end
end
-- The jobs of one fire (one per replica, ids comma-joined): linked both ways so runs can be listed and overlap
-- checked. Returns the first job's status ('duplicate' when its dedupe key is held: nothing was created).
local function createScheduledJob(name, ids, queue, spec, runAt, scheduledFor, now, metaJson)
  local list = {}
  for id in string.gmatch(ids, '[^,]+') do list[#list + 1] = id end
  local first
  for i, id in ipairs(list) do
    local meta = metaJson ~= '' and cjson.decode(metaJson) or {}
    if #list > 1 then
      meta.replica = i - 1
      meta.replicaOf = list[1]
    end
    local status = createJob(id, queue, spec, runAt, now, meta)
    first = first or status
    if status ~= 'duplicate' then
      redis.call('HSET', K.job(id), 'schedule', name, 'scheduledFor', scheduledFor)
      redis.call('SADD', K.scheduleRunning(name), id)
      redis.call('ZADD', K.scheduleRuns(name), 0, id)
      redis.call('HSET', K.schedule(name), 'lastRunAt', now, 'lastJobId', list[1])
    end
  end
  emit('schedule.fired', list[1], queue, { schedule = name, jobIds = list, scheduledFor = tonumber(scheduledFor), status = first })
  return first
end
-- A workflow run fired by a schedule: its record and all step jobs (each step after the ones it depends on). With
-- runAt (a manual run later), the first steps wait as delayed and the others, waiting on them, cannot start before.
local function createScheduledRun(name, bundle, runAt, scheduledFor, now)
  local b = cjson.decode(bundle)
  local first
  for _, j in ipairs(b.jobs) do
    local status = createJob(j.id, j.queue, j.spec, runAt, now, j.meta)
    first = first or status
    if status ~= 'duplicate' then
      redis.call('HSET', K.job(j.id), 'schedule', name, 'scheduledFor', scheduledFor)
      redis.call('SADD', K.scheduleRunning(name), j.id)
      redis.call('ZADD', K.scheduleRuns(name), 0, j.id)
    end
  end
  redis.call('HSET', K.workflow(b.workflowId), 'doc', b.doc)
  redis.call('ZADD', K.workflowIndex(), 0, b.workflowId)
  redis.call('HSET', K.schedule(name), 'lastRunAt', now, 'lastJobId', b.jobs[1].id)
  emit('schedule.fired', b.jobs[1].id, b.jobs[1].queue, { schedule = name, workflowId = b.workflowId, scheduledFor = tonumber(scheduledFor) })
  return first
end
-- A fire time that made no job (overlap skip) or was missed (misfire): listed among the schedule's runs, and an event.
local function recordUnfired(name, state, scheduledFor, now, queue, data)
  data.schedule = name
  data.state = state
  data.scheduledFor = tonumber(scheduledFor)
  data.recordedAt = tonumber(now)
  local k = K.scheduleUnfired(name)
  redis.call('LPUSH', k, cjson.encode(data))
  redis.call('LTRIM', k, 0, UNFIRED_MAX - 1)
  if state == 'skipped' then
    -- One event a minute at most for a schedule's skips; data.skips counts those it stands for (this one included).
    local sk = K.schedule(name)
    local n = redis.call('HINCRBY', sk, 'skipsUnannounced', 1)
    local last = tonumber(redis.call('HGET', sk, 'lastSkipEventAt') or '')
    if last and tonumber(now) - last < SKIP_EVENT_EVERY_MS then return end
    redis.call('HSET', sk, 'lastSkipEventAt', now, 'skipsUnannounced', 0)
    data.skips = n
  end
  emit('schedule.' .. state, '', queue, data)
end
-- The queue a fire's events are filed under: the job's, or a workflow's first step's.
local function fireQueue(queue, spec, meta)
  if meta ~= 'bundle' then return queue end
  local b = cjson.decode(spec)
  return b.jobs[1] and b.jobs[1].queue or ''
end
local function createFire(name, ids, queue, spec, runAt, scheduledFor, now, meta)
  if meta == 'bundle' then return createScheduledRun(name, spec, runAt, scheduledFor, now) end
  return createScheduledJob(name, ids, queue, spec, runAt, scheduledFor, now, meta)
end
