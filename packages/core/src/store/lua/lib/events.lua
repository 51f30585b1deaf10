-- Appends a lifecycle event to the events stream, in the same atomic step as the change it reports. The stream
-- is capped by length here (about EVENTS_MAX_LEN) and by age by the scheduler (DROVER_EVENTS_RETENTION_MS).
-- extra: JSON members added as they are (a job's result), not decoded and encoded again (cjson would round numbers).
local function emit(etype, id, queue, data, extra)
  local d = data and cjson.encode(data) or '{}'
  if extra and extra ~= '' then d = string.sub(d, 1, -2) .. (d == '{}' and '' or ',') .. extra .. '}' end
  redis.call('XADD', K.events(), 'MAXLEN', '~', EVENTS_MAX_LEN, '*', 't', etype, 'j', id or '', 'q', queue or '',
    'd', d)
end
-- What a job reported about itself (the runner stores both as JSON text), as members of its final event.
local function jobReport(k)
  local r = redis.call('HMGET', k, 'progress', 'result')
  local parts = {}
  if r[1] then parts[#parts + 1] = '"progress":' .. r[1] end
  if r[2] then parts[#parts + 1] = '"result":' .. r[2] end
  return table.concat(parts, ',')
end
