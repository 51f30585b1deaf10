-- A job's place among the store's waiting jobs (a queue's parked set, a placement group): lower goes first; 0 for
-- the default priority, so entries written before priorities existed keep their place among default ones.
local function rankOf(priority)
  return DEFAULT_PRIORITY - (tonumber(priority) or DEFAULT_PRIORITY)
end
local function priorityRank(id)
  return rankOf(redis.call('HGET', K.job(id), 'priority'))
end
-- A queued job about to be published (again): in the outbox until the broker confirms it, and in its queue's
-- waiting set (most urgent, then oldest, first) until it is claimed, parked or declined. Each job there has a
-- broker message on its way, so a claim may take the set's first job instead of the delivered one: on a broker
-- that cannot order by priority (RabbitMQ quorum queues), the store does (CLAIM, storeOrder).
-- known: {placement, priority} when the caller has them (a create), else they are read.
local function toOutbox(id, queue, now, known)
  redis.call('ZADD', K.outbox(), now, id)
  -- Only jobs every runner of the queue may run wait here, so any delivery of the queue may take any of them. One
  -- with constraints keeps its own message: a delivery that took it could not hand it on to a runner that fits.
  local placement, priority
  if known then
    placement, priority = known.placement, known.priority
  else
    local h = redis.call('HMGET', K.job(id), 'placement', 'priority')
    placement, priority = h[1], h[2]
  end
  if placement then return end
  redis.call('ZADD', K.queueWaiting(queue), rankOf(priority) * 1e13 + now, id)
end
local function notWaiting(id, queue)
  redis.call('ZREM', K.outbox(), id)
  redis.call('ZREM', K.queueWaiting(queue), id)
end
-- A job that became runnable outside a publisher's hands (released by a queue gate, or its dependencies ended):
-- the scheduler publishes the ready list on its next tick; the outbox entry covers a scheduler that dies first.
local function makeReady(id, queue, now)
  toOutbox(id, queue, now)
  redis.call('RPUSH', K.ready(), id .. ' ' .. queue)
end
