-- Shared by the scripts that evict or purge. Records found while a script runs (not
-- declared in KEYS) are read before the script writes anything: during a slot migration
-- such a key may already have moved, and Redis then fails the script at that read, before
-- any change (never half-applied).
--
-- Built on first use: `local expired, settle, drop, purge = drops()`. A script run that
-- evicts and purges nothing does not pay to create them (a closure each, every run).
local function drops()
  local function clock()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end

  -- The keys whose record expired by `now` (server ms), at most `limit` of the due entries
  -- (all without a limit). The ttl index may hold entries of records Redis expired, or
  -- rewritten with a later expiry by a script that did not re-score them, so each due entry
  -- is checked against the record's own expiry. Reads only; returns the expired keys, the
  -- entries to re-score ({at, key, ...}) and, with a limit, the due keys it checked.
  local function expired(now, limit)
    if redis.call('EXISTS', TTL) == 0 then return {}, {}, {} end
    local due
    if limit then
      due = redis.call('ZRANGEBYSCORE', TTL, '-inf', string.format('(%d', now), 'LIMIT', 0, limit)
    else
      due = redis.call('ZRANGEBYSCORE', TTL, '-inf', string.format('(%d', now))
    end
    local gone, again = {}, {}
    for i = 1, #due do
      local at = redis.call('PEXPIRETIME', REC .. due[i])
      if at == -2 or (at >= 0 and at < now) then
        gone[#gone + 1] = due[i]
      elseif at >= 0 then
        again[#again + 1] = at
        again[#again + 1] = due[i]
      end
    end
    if limit then return gone, again, due end
    return gone, again, nil
  end

  -- Forget the ttl entries checked (all those due by `now` when `checked` is nil),
  -- re-scoring those of records that expire later.
  local function settle(now, again, checked)
    if checked then
      for s = 1, #checked, 1000 do
        redis.call('ZREM', TTL, unpack(checked, s, math.min(s + 999, #checked)))
      end
    else
      redis.call('ZREMRANGEBYSCORE', TTL, '-inf', string.format('(%d', now))
    end
    if #again > 0 then redis.call('ZADD', TTL, unpack(again)) end
  end

  -- Drop records (value and recency); append their keys to `fields` as 'd' changes.
  local function drop(keys, fields)
    for s = 1, #keys, 1000 do
      local chunk = {unpack(keys, s, math.min(s + 999, #keys))}
      local recs = {}
      for i = 1, #chunk do
        recs[i] = REC .. chunk[i]
        fields[#fields + 1] = 'd'
        fields[#fields + 1] = chunk[i]
      end
      redis.call('DEL', unpack(recs))
      redis.call('ZREM', LRU, unpack(chunk))
      redis.call('ZREM', TTL, unpack(chunk))  -- the ttl index holds live records only
    end
  end

  -- Purge the expired records now (the scripts that list or count).
  local function purge(fields)
    local now = clock()
    local gone, again = expired(now)
    if #gone == 0 and #again == 0 then return end
    settle(now, again)
    drop(gone, fields)
  end
  return expired, settle, drop, purge
end
