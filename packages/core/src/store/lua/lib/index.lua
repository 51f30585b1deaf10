local function move(id, queue, from, to)
  if from then
    redis.call('ZREM', K.indexStatus(from), id)
    redis.call('ZREM', K.indexQueueStatus(queue, from), id)
    -- A job that stops being queued stops waiting for a delivery (see toOutbox).
    if from == 'queued' then redis.call('ZREM', K.queueWaiting(queue), id) end
  end
  redis.call('ZADD', K.indexStatus(to), 0, id)
  redis.call('ZADD', K.indexQueueStatus(queue, to), 0, id)
end
