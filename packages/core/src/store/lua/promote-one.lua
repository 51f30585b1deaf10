-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: id, now. Starts a delayed job now (POST /v1/jobs/:id/promote): queued (+outbox), for the caller to
-- publish. Returns {'promoted', queue}, or {status} of a job that is not delayed ('missing' if there is none).
--!include lib/promote-job
local queue, status = promoteJob(ARGV[1], tonumber(ARGV[2]))
if queue then return {'promoted', queue} end
return {status}
