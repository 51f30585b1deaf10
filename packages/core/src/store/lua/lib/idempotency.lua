-- Lua used by the creating scripts (CREATE, SCHED_TRIGGER). `idemCheck` returns nil (new key), {'reused'} (another
-- request holds the key) or {'replay', ref, status, id, ...}; `idemBind` records what was created, with its TTL.
local function idemCheck(idem)
  if not idem then return nil end
  local v = redis.call('GET', K.idempotency(idem.d))
  if not v then return nil end
  local b = cjson.decode(v)
  if b.fp ~= idem.fp then return {'reused'} end
  local out = {'replay', b.ref or ''}
  for _, x in ipairs(b.r) do out[#out + 1] = x end
  return out
end
local function idemBind(idem, ref, results)
  if not idem then return end
  redis.call('SET', K.idempotency(idem.d), cjson.encode({ fp = idem.fp, ref = ref or '', r = results }), 'PX', idem.ttl)
end
