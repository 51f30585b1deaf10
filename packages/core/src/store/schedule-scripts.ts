import { IDEMPOTENCY_LUA } from './idempotency.js';
import { PRELUDE } from './scripts.js';

/**
 * Schedule scripts. Keys: sched:<name> (hash: def, enabled, nextRunAt, version, last*), schedules (lex index of
 * names), sched-due (zset of enabled schedules by nextRunAt), sched:<name>:running (set of unfinished job ids),
 * sched:<name>:runs (lex index of the jobs it produced), sched:<name>:unfired (list, newest first, of the fire
 * times that made no job: overlap skips and misfires, capped at UNFIRED_MAX).
 */
/** How many unfired (skipped, misfired) fire times a schedule keeps listed. */
export const UNFIRED_MAX = 100;
/**
 * At most one schedule.skipped event per schedule in this long, saying how many skips it stands for: a per-second
 * schedule whose job runs for an hour would otherwise write 3600 events and push everything else out of the capped
 * stream. Every skip is still listed (unfired) and counted in the metric.
 */
export const SKIP_EVENT_EVERY_MS = 60_000;

const SCHED = `
local UNFIRED_MAX = ${UNFIRED_MAX}
local SKIP_EVENT_EVERY_MS = ${SKIP_EVENT_EVERY_MS}
local function schedKey(name) return base .. ':sched:' .. name end
local function setDue(name, enabled, nextRunAt)
  if enabled == '1' and nextRunAt ~= '' then
    redis.call('ZADD', base .. ':sched-due', nextRunAt, name)
  else
    redis.call('ZREM', base .. ':sched-due', name)
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
      redis.call('HSET', jobKey(id), 'schedule', name, 'scheduledFor', scheduledFor)
      redis.call('SADD', schedKey(name) .. ':running', id)
      redis.call('ZADD', schedKey(name) .. ':runs', 0, id)
      redis.call('HSET', schedKey(name), 'lastRunAt', now, 'lastJobId', list[1])
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
      redis.call('HSET', jobKey(j.id), 'schedule', name, 'scheduledFor', scheduledFor)
      redis.call('SADD', schedKey(name) .. ':running', j.id)
      redis.call('ZADD', schedKey(name) .. ':runs', 0, j.id)
    end
  end
  redis.call('HSET', base .. ':wf:' .. b.workflowId, 'doc', b.doc)
  redis.call('ZADD', base .. ':wf:idx', 0, b.workflowId)
  redis.call('HSET', schedKey(name), 'lastRunAt', now, 'lastJobId', b.jobs[1].id)
  emit('schedule.fired', b.jobs[1].id, b.jobs[1].queue, { schedule = name, workflowId = b.workflowId, scheduledFor = tonumber(scheduledFor) })
  return first
end
-- A fire time that made no job (overlap skip) or was missed (misfire): listed among the schedule's runs, and an event.
local function recordUnfired(name, state, scheduledFor, now, queue, data)
  data.schedule = name
  data.state = state
  data.scheduledFor = tonumber(scheduledFor)
  data.recordedAt = tonumber(now)
  local k = schedKey(name) .. ':unfired'
  redis.call('LPUSH', k, cjson.encode(data))
  redis.call('LTRIM', k, 0, UNFIRED_MAX - 1)
  if state == 'skipped' then
    -- One event a minute at most for a schedule's skips; data.skips counts those it stands for (this one included).
    local sk = schedKey(name)
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
`;

/** ARGV: base, name, def, enabled, nextRunAt|'', now, mode (create|update). Returns 1, or 0 (exists / missing). */
export const SCHED_PUT = `${PRELUDE}${SCHED}
local name, def, enabled, nextRunAt, now, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local k = schedKey(name)
local exists = redis.call('EXISTS', k) == 1
if (mode == 'create' and exists) or (mode == 'update' and not exists) then return 0 end
if mode == 'create' then redis.call('HSET', k, 'createdAt', now, 'consecutiveFailures', 0) end
redis.call('HSET', k, 'def', def, 'enabled', enabled, 'nextRunAt', nextRunAt, 'updatedAt', now)
-- A fire computed against the old definition must not land: bump the version it checks.
redis.call('HINCRBY', k, 'version', 1)
redis.call('ZADD', base .. ':schedules', 0, name)
setDue(name, enabled, nextRunAt)
return 1
`;

/** ARGV: base, now, then (name, enabled, nextRunAt|'') per schedule. All exist or nothing changes: returns missing names. */
export const SCHED_SET_ENABLED = `${PRELUDE}${SCHED}
local now = ARGV[2]
local missing = {}
for i = 3, #ARGV, 3 do
  if redis.call('EXISTS', schedKey(ARGV[i])) == 0 then missing[#missing + 1] = ARGV[i] end
end
if #missing > 0 then return missing end
for i = 3, #ARGV, 3 do
  local name, enabled, nextRunAt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  redis.call('HSET', schedKey(name), 'enabled', enabled, 'nextRunAt', nextRunAt, 'updatedAt', now)
  redis.call('HINCRBY', schedKey(name), 'version', 1)
  setDue(name, enabled, nextRunAt)
end
return missing
`;

/** ARGV: base, name, kill (1|0), now. Returns {found, cancelled ids..., '|', flagged running ids...}. */
export const SCHED_DELETE = `${PRELUDE}${SCHED}
local name, kill, now = ARGV[2], ARGV[3], ARGV[4]
local k = schedKey(name)
if redis.call('EXISTS', k) == 0 then return {0} end
local out = {1}
local flagged = {}
if kill == '1' then
  for _, id in ipairs(redis.call('SMEMBERS', k .. ':running')) do
    local action = cancelJob(id, now)
    if action == 'cancelled' then out[#out + 1] = id elseif action == 'flagged' then flagged[#flagged + 1] = id end
  end
end
out[#out + 1] = '|'
for _, id in ipairs(flagged) do out[#out + 1] = id end
redis.call('DEL', k, k .. ':running', k .. ':runs', k .. ':unfired')
redis.call('ZREM', base .. ':schedules', name)
redis.call('ZREM', base .. ':sched-due', name)
return out
`;

/**
 * ARGV: base, now, holdUntil, limit. Takes due schedules for this scheduler: their due score moves to holdUntil
 * so other replicas leave them alone meanwhile (if this one dies, they come back after holdUntil).
 * Returns {name, nextRunAt, version, def, ...}.
 */
export const SCHED_CLAIM_DUE = `${PRELUDE}${SCHED}
local now, holdUntil, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local due = redis.call('ZRANGE', base .. ':sched-due', '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
local out = {}
for _, name in ipairs(due) do
  redis.call('ZADD', base .. ':sched-due', holdUntil, name)
  local h = redis.call('HMGET', schedKey(name), 'nextRunAt', 'version', 'def')
  out[#out + 1] = name
  out[#out + 1] = h[1] or ''
  out[#out + 1] = h[2] or ''
  out[#out + 1] = h[3] or ''
end
return out
`;

/**
 * ARGV: base, now, then 12 per schedule: name, version, expectedNextRunAt, newNextRunAt|'', fire (1|0), misfired (1|0),
 * runAt|'' (a jittered start), missed (fire times missed, for a misfire), jobIds (comma-joined, one per replica), queue,
 * spec, meta (see CREATE). A fire lands only if the schedule still has that version and nextRunAt: so each fire time
 * produces at most one job however many schedulers computed it. A misfire and an overlap skip are recorded (unfired).
 * Returns 4 per schedule: name, outcome (fired|skipped|misfired|excluded|stale), job status, replaced running ids (comma-joined).
 */
export const SCHED_FIRE = `${PRELUDE}${SCHED}
local now = ARGV[2]
local out = {}
for i = 3, #ARGV, 12 do
  local name, version, expected, nextRunAt, fire, misfired, runAt, missed, id, queue, spec, meta =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10], ARGV[i + 11]
  local k = schedKey(name)
  local h = redis.call('HMGET', k, 'version', 'nextRunAt', 'enabled', 'def')
  local outcome, status, replaced = 'stale', '', ''
  if h[1] == version and h[2] == expected and h[3] == '1' then
    local def = cjson.decode(h[4])
    if fire ~= '1' then
      -- Not fired: by misfire policy, or the time fell on a date its calendar gained since it was computed.
      outcome = misfired == '1' and 'misfired' or 'excluded'
    elseif def.overlap == 'skip' and redis.call('SCARD', k .. ':running') > 0 then
      outcome = 'skipped'
      redis.call('HSET', k, 'lastSkippedAt', now)
      recordUnfired(name, 'skipped', expected, now, fireQueue(queue, spec, meta), { runningJobs = redis.call('SMEMBERS', k .. ':running') })
    else
      if def.overlap == 'replace' then
        local flagged = {}
        for _, rid in ipairs(redis.call('SMEMBERS', k .. ':running')) do
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
`;

/**
 * ARGV: base, name, now, jobIds, queue, spec, runAt|'', meta, idem JSON|''. A manual run: nextRunAt is untouched.
 * Returns {status} ({''} for an unknown schedule). With idem (see idempotency.ts), a key seen before fires nothing and
 * returns {'replay', '', status, firstJobId} or {'reused'}; a new key is bound to the run in the same step.
 */
export const SCHED_TRIGGER = `${PRELUDE}${IDEMPOTENCY_LUA}${SCHED}
local name, now = ARGV[2], ARGV[3]
local idem = ARGV[9] ~= '' and cjson.decode(ARGV[9]) or nil
local seen = idemCheck(idem)
if seen then return seen end
if redis.call('EXISTS', schedKey(name)) == 0 then return {''} end
local status = createFire(name, ARGV[4], ARGV[5], ARGV[6], ARGV[7], now, now, ARGV[8])
idemBind(idem, '', {status, string.match(ARGV[4], '[^,]+') or ''})
return {status}
`;
