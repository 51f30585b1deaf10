--!include lib/core
--  Deletes a finished job's record, output, attempts and index entries; false (nothing deleted) for an unfinished one.
local function forgetFinished(id, h)
  local k = jobKey(id)
  redis.call('ZREM', base .. ':finished', id)
  if h[2] then redis.call('ZREM', qKey(h[2]) .. ':finished', id) end
  if not h[1] or not TERMINAL[h[1]] then return false end
  redis.call('DEL', k, k .. ':attempts', k .. ':log', k .. ':dependents')
  redis.call('ZREM', base .. ':idx:all', id)
  redis.call('ZREM', base .. ':idx:q:' .. h[2], id)
  redis.call('ZREM', base .. ':idx:s:' .. h[1], id)
  redis.call('ZREM', base .. ':idx:qs:' .. h[2] .. ':' .. h[1], id)
  if h[3] then redis.call('ZREM', base .. ':sched:' .. h[3] .. ':runs', id) end
  return true
end
local function finishedFields(id) return redis.call('HMGET', jobKey(id), 'status', 'queue', 'schedule', 'archived', 'finishedAt') end
