-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: now, options JSON|'', then (id, queue, spec, runAt|'', meta JSON|'') per job. meta: {dedupeKey, name,
-- replica, replicaOf, after: [job ids], afterNames: [names], afterEnd: [job ids], recheck: 1}. options: {idem: {d, fp, ttl}} for a keyed submission,
-- {wf: {id, doc}} to store a workflow's record with its step jobs. Checks first that every job id in `after` exists or
-- comes earlier in the batch (else nothing is written: returns {'unknown', id}); then creates all. Returns {status,
-- id} per job, id being the existing job for a duplicate. With idem, a key seen before creates nothing and returns
-- {'replay', ref, status, id, ...} (what it created then) or {'reused'} (it came with another request); a new key is
-- bound to the results in this same step, so no retry can find the jobs without their binding or the other way round.
--!include lib/idempotency
--!include lib/job-create
local now = tonumber(ARGV[1])
local options = ARGV[2] ~= '' and cjson.decode(ARGV[2]) or {}
local seen = idemCheck(options.idem)
if seen then return seen end
local metas = {}
-- Jobs of this batch may depend on ones before them in it (a workflow's steps, in topological order).
local earlier = {}
for i = 3, #ARGV, 5 do
  local meta = ARGV[i + 4] ~= '' and cjson.decode(ARGV[i + 4]) or {}
  for _, dep in ipairs(meta.after or {}) do
    if not earlier[dep] and redis.call('EXISTS', K.job(dep)) == 0 then return {'unknown', dep} end
  end
  metas[i] = meta
  earlier[ARGV[i]] = true
end
local out = {}
for i = 3, #ARGV, 5 do
  local status, id = createJob(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now, metas[i])
  out[#out + 1] = status
  out[#out + 1] = id
end
if options.wf then
  redis.call('HSET', K.workflow(options.wf.id), 'doc', options.wf.doc)
  redis.call('ZADD', K.workflowIndex(), 0, options.wf.id)
end
idemBind(options.idem, options.wf and options.wf.id, out)
return out
