-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: name, now, jobIds, queue, spec, runAt|'', meta, idem JSON|''. A manual run: nextRunAt is untouched.
-- Returns {status} ({''} for an unknown schedule). With idem (see idempotency.ts), a key seen before fires nothing and
-- returns {'replay', '', status, firstJobId} or {'reused'}; a new key is bound to the run in the same step.
--!include lib/idempotency
--!include lib/schedules
local name, now = ARGV[1], ARGV[2]
local idem = ARGV[8] ~= '' and cjson.decode(ARGV[8]) or nil
local seen = idemCheck(idem)
if seen then return seen end
if redis.call('EXISTS', K.schedule(name)) == 0 then return {''} end
local status = createFire(name, ARGV[3], ARGV[4], ARGV[5], ARGV[6], now, now, ARGV[7])
idemBind(idem, '', {status, string.match(ARGV[3], '[^,]+') or ''})
return {status}
