-- KEYS[1]: `{prefix}:routing` (the keys are built from its hash tag). ARGV: ids... Deletes those of the jobs that are finished (DELETE /v1/jobs/:id); returns the ids it deleted.
--!include lib/forget
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  if forgetFinished(id, finishedFields(id)) then out[#out + 1] = id end
end
return out
