-- KEYS: the job's log stream, the job's hash (one slot: both under the deployment's `{prefix}`). ARGV: none. A daemon attempt begins: output from before the previous attempt is dropped, so a
-- daemon keeps its last two runs' output (each up to the cap) however long it lives. Marks use Redis' clock,
-- the same clock that stamps the stream ids.
local t = redis.call('TIME')
local mark = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-0'
local prev = redis.call('HGET', KEYS[2], 'logMark')
if prev then redis.call('XTRIM', KEYS[1], 'MINID', prev) end
redis.call('HSET', KEYS[2], 'logMark', mark, 'outputBytes', 0, 'truncated', 0)
return 1
