-- ARGV: base, name, now, jobIds, queue, spec, runAt|'', meta, idem JSON|''. A manual run: nextRunAt is untouched.
-- Returns {status} ({''} for an unknown schedule). With idem (see idempotency.ts), a key seen before fires nothing and
-- returns {'replay', '', status, firstJobId} or {'reused'}; a new key is bound to the run in the same step.
--!include lib/idempotency
--!include lib/schedules
local name, now = ARGV[2], ARGV[3]
local idem = ARGV[9] ~= '' and cjson.decode(ARGV[9]) or nil
local seen = idemCheck(idem)
if seen then return seen end
if redis.call('EXISTS', K.schedule(name)) == 0 then return {''} end
local status = createFire(name, ARGV[4], ARGV[5], ARGV[6], ARGV[7], now, now, ARGV[8])
idemBind(idem, '', {status, string.match(ARGV[4], '[^,]+') or ''})
return {status}
