-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, runnerId, now, leaseUntil, token, placement (the runner: encodePlacement, or ''), storeOrder ('1' or
-- ''), the delivery's queue. The one gate before a spawn: only a queued job can be claimed,
-- so a duplicate delivery finds it running or finished and is dropped. The token is unique per delivery: a claim
-- replayed by the client library after a reconnect (already applied before the connection dropped) finds its own
-- token and gets its claim back instead of being taken for a duplicate.
--
-- The queue's settings gate the claim too: paused, at its global concurrency, over its rate limit, or with older
-- jobs parked ahead (released most urgent first, then first come, first served) the job is parked in the queue instead: it stays `queued`, its
-- message is acknowledged, and it is released (republished) when the queue has room (RELEASE_PARKED).
-- Returns {1, attempt, spec, outputBytes, gated 0|1, queueDefaultTimeoutMs|'', replica|'', queuedAt|'', traceparent|'',
-- queueResources (JSON)|'', the id of the job claimed (another than ARGV's under store order)}
-- or {0, currentStatus|'parked'|'placement'|'expired'}: 'placement' when the runner does not satisfy the job's constraints,
-- 'expired' when the job's deadline passed (it ended expired now).
--!include lib/events
--!include lib/index
--!include lib/job-end
--!include lib/placement
--!include lib/placement-groups
--!include lib/waiting
local id, runnerId, now, leaseUntil, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
-- Store order (ARGV[7] '1', ARGV[8] the delivery's queue): a delivery claims its queue's most urgent waiting job,
-- which need not be the job it names. Waiting jobs have no constraints (toOutbox), so every runner of the queue may
-- run any of them; a constrained job keeps its own message. Every waiting job has a message of its own on the way,
-- so the job a delivery passed over is taken by the message of the job it took (or by its own, redelivered), and
-- a message that finds nothing waiting is a spare: its own job decides (dropped if it ran). A claim replayed after
-- a reconnect finds the job it took under its token. Declined jobs a runner takes from the store pass no '1'.
local function storeOrder(id)
  local taken = redis.call('GET', K.claimedWith(token))
  if taken then return taken end
  local w = K.queueWaiting(ARGV[8])
  -- Queued but not waiting (constrained, parked, declined): the job's own message; the usual path decides.
  if redis.call('HGET', K.job(id), 'status') == 'queued' and not redis.call('ZSCORE', w, id) then return id end
  for _, m in ipairs(redis.call('ZRANGE', w, 0, 15)) do
    if m == id then return id end
    if redis.call('HGET', K.job(m), 'status') == 'queued' then
      redis.call('SET', K.claimedWith(token), m, 'PX', 60000)
      return m
    end
    redis.call('ZREM', w, m) -- ended by a path that left it listed
  end
  return id
end
if ARGV[7] == '1' then id = storeOrder(id) end
local k = K.job(id)
local h = redis.call('HMGET', k, 'status', 'queue', 'spec', 'outputBytes', 'claimToken', 'attempts', 'replica', 'wf', 'wfLimit', 'queuedAt', 'trace', 'placement', 'placedIn', 'expiresAt')
local cfg = redis.call('HMGET', K.queueConfig(h[2] or ''), 'paused', 'concurrency', 'rateMax', 'ratePerMs', 'defaultTimeoutMs', 'resources')
local gated = (cfg[1] == '1' or cfg[2] or cfg[3]) and 1 or 0
if h[1] == 'running' and h[5] == token then return {1, tonumber(h[6]), h[3], h[4] or '0', gated, cfg[5] or '', h[7] or '', h[10] or '', h[11] or '', cfg[6] or '', id} end
if h[1] ~= 'queued' then return {0, h[1] or 'missing'} end
-- Past its deadline: it ends expired instead of starting late.
local deadline = tonumber(h[14] or '')
if deadline and now >= deadline then
  expireJob(id, now)
  return {0, 'expired'}
end
-- Constraints: a runner that does not satisfy them declines the job into its placement group (its message is
-- acknowledged) and tells the runners; one that does takes it from there (see unplace, PLACED).
if h[12] then
  if not placementAllows(h[12], ARGV[6]) then
    local grp = redis.sha1hex(h[2] .. ' ' .. h[12])
    if h[13] ~= grp then redis.call('HSET', k, 'placedIn', grp, 'placedAt', now) end
    -- Most urgent first, then oldest: the rank's weight (1e13 ms, centuries) is larger than any epoch time.
    redis.call('ZADD', K.placementGroup(grp), 'NX', now + priorityRank(id) * 1e13, id)
    local notice = '{"queue":' .. cjson.encode(h[2]) .. ',"constraints":' .. h[12] .. '}'
    redis.call('HSET', K.placements(), grp, notice)
    redis.call('HSET', k, 'placedBy', runnerId)
    redis.call('HINCRBY', k, 'placementDeclines', 1)
    notWaiting(id, h[2])
    redis.call('PUBLISH', K.control(), '{"type":"placement","group":"' .. grp .. '",' .. string.sub(notice, 2))
    return {0, 'placement'}
  end
  if h[13] then unplace(k, id) end
end
-- A workflow's own concurrency: its steps past the limit wait in the workflow's parked set.
if h[9] and redis.call('SCARD', K.workflowRunning(h[8])) >= tonumber(h[9]) then
  redis.call('ZADD', K.workflowParked(h[8]), priorityRank(id), id)
  notWaiting(id, h[2])
  return {0, 'parked'}
end
if gated == 1 then
  redis.call('ZREMRANGEBYSCORE', K.queueReleasing(h[2]), '-inf', now - 10000)
  local released = redis.call('ZSCORE', K.queueReleasing(h[2]), id)
  local reserved = redis.call('ZCARD', K.queueReleasing(h[2])) - (released and 1 or 0)
  local park = cfg[1] == '1'
  if not park and not released and redis.call('ZCARD', K.queueParked(h[2])) > 0 then park = true end
  if not park and cfg[2] then
    park = redis.call('ZCARD', K.indexQueueStatus(h[2], 'running')) + reserved >= tonumber(cfg[2])
  end
  if not park and cfg[3] then
    redis.call('ZREMRANGEBYSCORE', K.queueStarts(h[2]), '-inf', now - tonumber(cfg[4]))
    park = redis.call('ZCARD', K.queueStarts(h[2])) + reserved >= tonumber(cfg[3])
  end
  redis.call('ZREM', K.queueReleasing(h[2]), id)
  if park then
    -- Released most urgent first; equal priorities by id, the order they came.
    redis.call('ZADD', K.queueParked(h[2]), priorityRank(id), id)
    redis.call('SADD', K.parkedQueues(), h[2])
    notWaiting(id, h[2])
    return {0, 'parked'}
  end
  if cfg[3] then redis.call('ZADD', K.queueStarts(h[2]), now, id .. ':' .. (tonumber(h[6]) + 1)) end
end
if h[9] then redis.call('SADD', K.workflowRunning(h[8]), id) end
local attempt = (tonumber(h[6]) or 0) + 1
redis.call('HSET', k, 'status', 'running', 'attempts', attempt, 'runnerId', runnerId, 'startedAt', now, 'claimedAt', now,
  'pid', '', 'exitCode', '', 'signal', '', 'error', '', 'finishedAt', '', 'claimToken', token)
redis.call('ZADD', K.leases(), leaseUntil, id)
redis.call('ZREM', K.outbox(), id)
move(id, h[2], 'queued', 'running')
-- queuedAt rides along: the stats aggregator takes the job's wait from the event instead of reading the record.
emit('job.started', id, h[2], { attempt = attempt, runnerId = runnerId, queuedAt = tonumber(h[10]) or cjson.null })
return {1, attempt, h[3], h[4] or '0', gated, cfg[5] or '', h[7] or '', h[10] or '', h[11] or '', cfg[6] or '', id}
