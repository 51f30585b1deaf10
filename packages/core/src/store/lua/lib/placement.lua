-- Lua for the claim script: `placementAllows(constraintsJson, runnerJson)` is `satisfies` (constraints as
-- normalizeConstraints keeps them; runner as encodePlacement writes it, '' for a caller that says nothing of itself,
-- which satisfies no constraint).
local function placementAllows(constraintsJson, runnerJson)
  if not runnerJson or runnerJson == '' then return false end
  local c = cjson.decode(constraintsJson)
  local me = cjson.decode(runnerJson)
  local function isAddress(want)
    local w = string.lower(want)
    for _, a in ipairs(me.addresses or {}) do if a == w then return true end end
    return false
  end
  local function names(want) return want == me.id or string.lower(want) == me.host or isAddress(want) end
  if type(c.host) == 'table' then
    local any = false
    for _, want in ipairs(c.host) do
      if names(want) then any = true break end
    end
    if not any then return false end
  end
  if type(c.notHost) == 'table' then
    for _, want in ipairs(c.notHost) do
      if names(want) then return false end
    end
  end
  if type(c.labels) == 'table' then
    local mine = type(me.labels) == 'table' and me.labels or {}
    for key, want in pairs(c.labels) do
      local ok
      if key == 'host' then ok = string.lower(want) == me.host
      elseif key == 'address' then ok = isAddress(want)
      else ok = mine[key] == want end
      if not ok then return false end
    end
  end
  return true
end
