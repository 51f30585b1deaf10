--!include lib/dependencies
--!include lib/events
--!include lib/index
--!include lib/job-end
--!include lib/waiting
-- The key a queue with dedupe on uses: the command line itself.
local function commandIdentity(spec)
  local s = cjson.decode(spec)
  local argv = type(s.argv) == 'table' and table.concat(s.argv, '\\0') or ''
  local args = type(s.args) == 'table' and table.concat(s.args, '\\0') or ''
  return redis.sha1hex((s.command or '') .. '\\1' .. argv .. '\\1' .. args)
end
-- What a create call reads once for all its jobs: per queue, whether dedupe is on and that it is in the queue set.
local queuesSeen = {}
local function queueDedupeOn(queue)
  local on = queuesSeen[queue]
  if on == nil then
    on = redis.call('HGET', K.queueConfig(queue), 'dedupe') == '1'
    redis.call('SADD', K.queues(), queue)
    queuesSeen[queue] = on
  end
  return on
end
-- Creates one job record: waiting (dependencies), delayed (runAt), or queued (with an outbox entry). A replay of
-- the same create (a client library re-sending it after a reconnect) must not reset a job that has moved on: it
-- is a no-op. With a dedupe key already held by an unfinished job, nothing is created: returns 'duplicate', its id.
local function createJob(id, queue, spec, runAt, now, meta)
  local k = K.job(id)
  if redis.call('EXISTS', k) == 1 then return redis.call('HGET', k, 'status'), id end
  meta = meta or {}
  local dedupeOn = queueDedupeOn(queue)
  local dkey = meta.dedupeKey
  if (not dkey or dkey == '') and dedupeOn then dkey = commandIdentity(spec) end
  -- The record's fields, written in one HSET at the end.
  local f = {'v', 1, 'id', id, 'queue', queue, 'spec', spec, 'attempts', 0, 'createdAt', now, 'outputBytes', 0}
  local function put(...)
    for _, v in ipairs({...}) do f[#f + 1] = v end
  end
  -- Copies of one submission share the key: only copy 0 checks and holds it (the others follow it either way).
  local follower = (tonumber(meta.replica) or 0) > 0 and redis.call('EXISTS', K.job(meta.replicaOf)) == 1
  if dkey and dkey ~= '' and not follower then
    local existing = redis.call('HGET', K.queueDedupe(queue), dkey)
    if existing then
      local st = redis.call('HGET', K.job(existing), 'status')
      if st and not TERMINAL[st] then return 'duplicate', existing end
    end
    redis.call('HSET', K.queueDedupe(queue), dkey, id)
    put('dedupeKey', dkey)
  end
  if meta.replica then put('replica', meta.replica, 'replicaOf', meta.replicaOf or id) end
  if meta.callbackUrl then put('callbackUrl', meta.callbackUrl) end
  if meta.trace then put('trace', meta.trace) end
  if meta.placement then put('placement', meta.placement) end
  if meta.priority then put('priority', meta.priority) end
  -- A deadline: no attempt starts after it (the claim checks; the scheduler's sweep ends jobs nobody claims).
  local expiresAt = tonumber(meta.expiresAt) or (tonumber(meta.ttlMs) and tonumber(now) + tonumber(meta.ttlMs))
  if expiresAt then
    put('expiresAt', expiresAt)
    redis.call('ZADD', K.expiring(), expiresAt, id)
  end
  if meta.wfLimit then put('wf', meta.workflow, 'wfLimit', meta.wfLimit) end
  if meta.name and meta.name ~= '' then
    put('name', meta.name)
    redis.call('SADD', K.named(meta.name), id)
  end
  redis.call('ZADD', K.indexAll(), 0, id)
  redis.call('ZADD', K.indexQueue(queue), 0, id)
  -- Dependencies read other records only: this one is written after, with the status they decide.
  local pending, failed = addDependencies(id, meta)
  if not pending or pending > 0 then
    put('status', 'waiting', 'depsPending', pending or 0)
    if meta.recheck and meta.afterNames then put('depNames', cjson.encode(meta.afterNames)) end
    if runAt ~= '' then put('runAt', runAt) end
    if not pending then put('error', failed) end
    redis.call('HSET', k, unpack(f))
    move(id, queue, nil, 'waiting')
    emit('job.submitted', id, queue, { status = 'waiting', name = meta.name or cjson.null })
    if not pending then
      cancelJob(id, now)
      return 'cancelled', id
    end
    return 'waiting', id
  end
  if runAt ~= '' then
    put('status', 'delayed', 'runAt', runAt)
    redis.call('HSET', k, unpack(f))
    redis.call('ZADD', K.delayed(), runAt, id)
    move(id, queue, nil, 'delayed')
    emit('job.submitted', id, queue, { status = 'delayed', runAt = tonumber(runAt), name = meta.name or cjson.null })
    return 'delayed', id
  end
  put('status', 'queued', 'queuedAt', now)
  redis.call('HSET', k, unpack(f))
  toOutbox(id, queue, now, { placement = meta.placement, priority = meta.priority })
  move(id, queue, nil, 'queued')
  emit('job.submitted', id, queue, { status = 'queued', name = meta.name or cjson.null })
  return 'queued', id
end
