-- ARGV: base, queue, now, limit. Releases parked jobs of a queue as far as its settings allow now: they go back to
-- the outbox and the ready list, and are returned ({id, ...}) for the caller to publish.
--!include lib/core
--!include lib/waiting
local queue, now, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local qk = qKey(queue)
local cfg = redis.call('HMGET', qcfgKey(queue), 'paused', 'concurrency', 'rateMax', 'ratePerMs')
if redis.call('ZCARD', qk .. ':parked') == 0 then
  redis.call('SREM', base .. ':parked-queues', queue)
  return {}
end
if cfg[1] == '1' then return {} end
redis.call('ZREMRANGEBYSCORE', qk .. ':releasing', '-inf', now - 10000)
local reserved = redis.call('ZCARD', qk .. ':releasing')
local n = limit
if cfg[2] then n = math.min(n, tonumber(cfg[2]) - redis.call('ZCARD', base .. ':idx:qs:' .. queue .. ':running') - reserved) end
if cfg[3] then
  redis.call('ZREMRANGEBYSCORE', qk .. ':starts', '-inf', now - tonumber(cfg[4]))
  n = math.min(n, tonumber(cfg[3]) - redis.call('ZCARD', qk .. ':starts') - reserved)
end
local out = {}
if n <= 0 then return out end
for _, id in ipairs(redis.call('ZRANGE', qk .. ':parked', 0, n - 1)) do
  redis.call('ZREM', qk .. ':parked', id)
  if redis.call('HGET', jobKey(id), 'status') == 'queued' then
    redis.call('ZADD', qk .. ':releasing', now, id)
    toOutbox(id, queue, now)
    out[#out + 1] = id
  end
end
if redis.call('ZCARD', qk .. ':parked') == 0 then redis.call('SREM', base .. ':parked-queues', queue) end
return out
