-- Appends a lifecycle event to the events stream, in the same atomic step as the change it reports. The stream
-- is capped by length here (about EVENTS_MAX_LEN) and by age by the scheduler (DROVER_EVENTS_RETENTION_MS).
-- extra: JSON members added as they are (a job's result), not decoded and encoded again (cjson would round numbers).
local function emit(etype, id, queue, data, extra)
  local d = data and cjson.encode(data) or '{}'
  if extra and extra ~= '' then d = string.sub(d, 1, -2) .. (d == '{}' and '' or ',') .. extra .. '}' end
  redis.call('XADD', K.events(), 'MAXLEN', '~', EVENTS_MAX_LEN, '*', 't', etype, 'j', id or '', 'q', queue or '',
    'd', d)
end
