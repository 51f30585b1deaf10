-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, now. Queued or delayed: cancelled at once (its broker message is dropped at claim).
-- Running: flagged, the owning runner kills it. Returns {action, status} with action
-- cancelled | flagged | ended (already terminal, unchanged) | missing.
--!include lib/job-end
local action, status = cancelJob(ARGV[1], ARGV[2])
return {action, status}
