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
-- Creates one job record: waiting (dependencies), delayed (runAt), or queued (with an outbox entry). A replay of
-- the same create (a client library re-sending it after a reconnect) must not reset a job that has moved on: it
-- is a no-op. With a dedupe key already held by an unfinished job, nothing is created: returns 'duplicate', its id.
local function createJob(id, queue, spec, runAt, now, meta)
  local k = K.job(id)
  if redis.call('EXISTS', k) == 1 then return redis.call('HGET', k, 'status'), id end
  meta = meta or {}
  local dkey = meta.dedupeKey
  if (not dkey or dkey == '') and redis.call('HGET', K.queueConfig(queue), 'dedupe') == '1' then dkey = commandIdentity(spec) end
  -- Copies of one submission share the key: only copy 0 checks and holds it (the others follow it either way).
  local follower = (tonumber(meta.replica) or 0) > 0 and redis.call('EXISTS', K.job(meta.replicaOf)) == 1
  if dkey and dkey ~= '' and not follower then
    local existing = redis.call('HGET', K.queueDedupe(queue), dkey)
    if existing then
      local st = redis.call('HGET', K.job(existing), 'status')
      if st and not TERMINAL[st] then return 'duplicate', existing end
    end
    redis.call('HSET', K.queueDedupe(queue), dkey, id)
    redis.call('HSET', k, 'dedupeKey', dkey)
  end
  redis.call('HSET', k, 'v', 1, 'id', id, 'queue', queue, 'spec', spec, 'attempts', 0, 'createdAt', now, 'outputBytes', 0)
  if meta.replica then redis.call('HSET', k, 'replica', meta.replica, 'replicaOf', meta.replicaOf or id) end
  if meta.callbackUrl then redis.call('HSET', k, 'callbackUrl', meta.callbackUrl) end
  if meta.trace then redis.call('HSET', k, 'trace', meta.trace) end
  if meta.placement then redis.call('HSET', k, 'placement', meta.placement) end
  if meta.priority then redis.call('HSET', k, 'priority', meta.priority) end
  -- A deadline: no attempt starts after it (the claim checks; the scheduler's sweep ends jobs nobody claims).
  local expiresAt = tonumber(meta.expiresAt) or (tonumber(meta.ttlMs) and tonumber(now) + tonumber(meta.ttlMs))
  if expiresAt then
    redis.call('HSET', k, 'expiresAt', expiresAt)
    redis.call('ZADD', K.expiring(), expiresAt, id)
  end
  if meta.wfLimit then redis.call('HSET', k, 'wf', meta.workflow, 'wfLimit', meta.wfLimit) end
  if meta.name and meta.name ~= '' then
    redis.call('HSET', k, 'name', meta.name)
    redis.call('SADD', K.named(meta.name), id)
  end
  redis.call('ZADD', K.indexAll(), 0, id)
  redis.call('ZADD', K.indexQueue(queue), 0, id)
  redis.call('SADD', K.queues(), queue)
  local pending, failed = addDependencies(id, meta)
  if not pending or pending > 0 then
    redis.call('HSET', k, 'status', 'waiting', 'depsPending', pending or 0)
    if meta.recheck and meta.afterNames then redis.call('HSET', k, 'depNames', cjson.encode(meta.afterNames)) end
    if runAt ~= '' then redis.call('HSET', k, 'runAt', runAt) end
    move(id, queue, nil, 'waiting')
    emit('job.submitted', id, queue, { status = 'waiting', name = meta.name or cjson.null })
    if not pending then
      redis.call('HSET', k, 'error', failed)
      cancelJob(id, now)
      return 'cancelled', id
    end
    return 'waiting', id
  end
  if runAt ~= '' then
    redis.call('HSET', k, 'status', 'delayed', 'runAt', runAt)
    redis.call('ZADD', K.delayed(), runAt, id)
    move(id, queue, nil, 'delayed')
    emit('job.submitted', id, queue, { status = 'delayed', runAt = tonumber(runAt), name = meta.name or cjson.null })
    return 'delayed', id
  end
  redis.call('HSET', k, 'status', 'queued', 'queuedAt', now)
  toOutbox(id, queue, now)
  move(id, queue, nil, 'queued')
  emit('job.submitted', id, queue, { status = 'queued', name = meta.name or cjson.null })
  return 'queued', id
end
