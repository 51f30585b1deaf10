--!include lib/core
--!include lib/waiting
-- A step of a workflow with a concurrency limit (its job's 'wf' field) stopped running: the next parked step may go.
local function workflowSlotFreed(wf, id, now)
  if not wf then return end
  local wk = base .. ':wf:' .. wf
  redis.call('SREM', wk .. ':running', id)
  redis.call('ZREM', wk .. ':parked', id)
  while redis.call('ZCARD', wk .. ':parked') > 0 do
    local nxt = redis.call('ZPOPMIN', wk .. ':parked')[1]
    local h = redis.call('HMGET', jobKey(nxt), 'status', 'queue')
    if h[1] == 'queued' then
      makeReady(nxt, h[2], now)
      return
    end
  end
end
