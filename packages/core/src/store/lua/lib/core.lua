local base = ARGV[1]
local function jobKey(id) return base .. ':job:' .. id end
local function qKey(queue) return base .. ':q:' .. queue end
local function qcfgKey(queue) return base .. ':qcfg:' .. queue end
