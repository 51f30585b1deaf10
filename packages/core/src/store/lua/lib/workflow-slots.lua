--!include lib/waiting
-- A step of a workflow with a concurrency limit (its job's 'wf' field) stopped running: the next parked step may go.
local function workflowSlotFreed(wf, id, now)
  if not wf then return end
  redis.call('SREM', K.workflowRunning(wf), id)
  redis.call('ZREM', K.workflowParked(wf), id)
  while redis.call('ZCARD', K.workflowParked(wf)) > 0 do
    local nxt = redis.call('ZPOPMIN', K.workflowParked(wf))[1]
    local h = redis.call('HMGET', K.job(nxt), 'status', 'queue')
    if h[1] == 'queued' then
      makeReady(nxt, h[2], now)
      return
    end
  end
end
