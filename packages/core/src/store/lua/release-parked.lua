-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: queue, now, limit. Releases parked jobs of a queue as far as its settings allow now: they go back to
-- the outbox and the ready list, and are returned ({id, ...}) for the caller to publish.
--!include lib/waiting
local queue, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cfg = redis.call('HMGET', K.queueConfig(queue), 'paused', 'concurrency', 'rateMax', 'ratePerMs')
if redis.call('ZCARD', K.queueParked(queue)) == 0 then
  redis.call('SREM', K.parkedQueues(), queue)
  return {}
end
if cfg[1] == '1' then return {} end
redis.call('ZREMRANGEBYSCORE', K.queueReleasing(queue), '-inf', now - 10000)
local reserved = redis.call('ZCARD', K.queueReleasing(queue))
local n = limit
if cfg[2] then n = math.min(n, tonumber(cfg[2]) - redis.call('ZCARD', K.indexQueueStatus(queue, 'running')) - reserved) end
if cfg[3] then
  redis.call('ZREMRANGEBYSCORE', K.queueStarts(queue), '-inf', now - tonumber(cfg[4]))
  n = math.min(n, tonumber(cfg[3]) - redis.call('ZCARD', K.queueStarts(queue)) - reserved)
end
local out = {}
if n <= 0 then return out end
for _, id in ipairs(redis.call('ZRANGE', K.queueParked(queue), 0, n - 1)) do
  redis.call('ZREM', K.queueParked(queue), id)
  if redis.call('HGET', K.job(id), 'status') == 'queued' then
    redis.call('ZADD', K.queueReleasing(queue), now, id)
    toOutbox(id, queue, now)
    out[#out + 1] = id
  end
end
if redis.call('ZCARD', K.queueParked(queue)) == 0 then redis.call('SREM', K.parkedQueues(), queue) end
return out
