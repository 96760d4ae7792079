-- Shared by the scripts that evict or purge: drop records (value, recency) and queue them
-- for unindexing; purge the expired.
local function drop(keys)
  for s = 1, #keys, 1000 do
    local chunk = {unpack(keys, s, math.min(s + 999, #keys))}
    local recs = {}
    for i = 1, #chunk do recs[i] = REC .. chunk[i] end
    redis.call('DEL', unpack(recs))
    redis.call('ZREM', LRU, unpack(chunk))
    local z = {'ZADD', PENDING}
    for i = 1, #chunk do
      z[2 * i + 1] = 0
      z[2 * i + 2] = chunk[i]
    end
    redis.call(unpack(z))
  end
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drop the records whose expiry has passed. The ttl index may hold stale entries (a record
-- rewritten without expiry, deleted or evicted: writes do not pay to remove them), so each
-- due entry is checked against the record's own expiry.
local function purge()
  if redis.call('EXISTS', TTL) == 0 then return end
  local now = clock()
  local upto = string.format('(%d', now)
  local due = redis.call('ZRANGEBYSCORE', TTL, '-inf', upto)
  if #due == 0 then return end
  local gone = {}
  for i = 1, #due do
    local at = redis.call('PEXPIRETIME', REC .. due[i])
    if at == -2 or (at >= 0 and at < now) then
      gone[#gone + 1] = due[i]
    elseif at >= 0 then
      redis.call('ZADD', TTL, at, due[i])
    end
  end
  redis.call('ZREMRANGEBYSCORE', TTL, '-inf', upto)
  if #gone > 0 then drop(gone) end
end
