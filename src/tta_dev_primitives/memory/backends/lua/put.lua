--! keys: lru st log
--! include: _names
--! include: _foreign
--! include: _drop
--! include: _log
--! include: _write
-- KEYS: lru, st, log, then the record key of each record written. ARGV: base, max_size
-- (0 = unbounded), ttl_ms (0 = none), the embedder of the vectors ('<name>:<dimensions>',
-- '' when no record carries one), then per record: key, value JSON, metadata JSON ('' =
-- none), vector (raw float32, '' = none), created and updated times (server ms; '' = the
-- server clock, and over a live record its created time is kept). Returns how many records
-- were evicted. A namespace keeps the embedder of its first vectors (ST field sp) and
-- refuses another one ('EMBEDDER <stored>' error) until it is emptied.
--
-- Reads come first (see _drop), each also checking its key's type: the record hashes (their
-- created times), the recency index, the ttl index when it is used. The first writes are
-- the counters of ST and the log entry, so a key of another type there (another client's
-- doing) fails the write before any record changed.
local count = (#ARGV - 4) / 6
local keys, created = {}, {}
for i = 1, count do
  keys[i] = ARGV[6 * i - 1]
  created[i] = redis.call('HGET', KEYS[3 + i], 'c')
end
local scores = zmscore(LRU, keys)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  local bad = foreign({TTL}, {'zset'})
  if bad then return redis.error_reply(bad) end
end
local space = ARGV[4]
local space_new = false
if space ~= '' then
  local stored = redis.call('HGET', ST, 'sp')
  if stored and stored ~= space then return redis.error_reply('EMBEDDER ' .. stored) end
  space_new = not stored
end
local now = clock()
local max = tonumber(ARGV[2])
-- The batch's keys, each once, in the order of their last write (their new recency order).
local last_at, order = {}, {}
for i = 1, count do last_at[keys[i]] = i end
for i = 1, count do
  if last_at[keys[i]] == i then order[#order + 1] = keys[i] end
end
local gone, again, victims, extra = {}, {}, {}, 0
local purged, checked = false, nil
if max > 0 then
  local added = 0
  local counted = {}
  for i = 1, count do
    if not scores[i] and not counted[keys[i]] then
      counted[keys[i]] = true
      added = added + 1
    end
  end
  local n = redis.call('ZCARD', LRU) + added
  if added > 0 and n > max then
    -- Expired records go before live ones are evicted.
    purged = true
    local due
    due, again = expired(now)
    if #due > 0 then
      local held = zmscore(LRU, due)
      for i = 1, #due do
        if not last_at[due[i]] then
          gone[#gone + 1] = due[i]
          if held[i] then n = n - 1 end
        end
      end
    end
    if n > max then
      local skip = {}
      for i = 1, #gone do skip[gone[i]] = true end
      local cand = redis.call('ZRANGE', LRU, 0, (n - max) + count + #gone - 1)
      for i = 1, #cand do
        if #victims >= n - max then break end
        if not last_at[cand[i]] and not skip[cand[i]] then victims[#victims + 1] = cand[i] end
      end
      for s = 1, #victims, 1000 do
        local recs = {}
        for i = s, math.min(s + 999, #victims) do recs[#recs + 1] = REC .. victims[i] end
        redis.call('EXISTS', unpack(recs))
      end
      -- A batch larger than max_size: its own oldest records go too (not written at all).
      extra = n - #victims - max
      if extra < 0 then extra = 0 end
    end
  end
end
if not purged and now % 8 == 0 then
  -- A bounded sweep on the write path (about one write in 8, at most 64 due entries): the
  -- records Redis expired leave their recency and ttl entries behind, which no read may
  -- ever purge; this keeps them bounded by the live records.
  local due
  gone, again, due = expired(now, 64)
  if #due > 0 then
    purged, checked = true, due
    local kept = {}
    for i = 1, #gone do
      if not last_at[gone[i]] then kept[#kept + 1] = gone[i] end
    end
    gone = kept
  end
end
-- The change first: counters, then the log entry.
local last = redis.call('HINCRBY', ST, 'c', count)
local fields = {}
local dropped = {}
for i = 1, #gone do dropped[#dropped + 1] = gone[i] end
for i = 1, #victims do dropped[#dropped + 1] = victims[i] end
for i = 1, extra do dropped[#dropped + 1] = order[i] end
for i = 1, #dropped do
  fields[#fields + 1] = 'd'
  fields[#fields + 1] = dropped[i]
end
for i = extra + 1, #order do
  fields[#fields + 1] = 'p'
  fields[#fields + 1] = order[i]
end
log(fields)
if space_new then redis.call('HSET', ST, 'sp', space) end
if purged then settle(now, again, checked) end
if #dropped > 0 then drop(dropped, {}) end
local at
if ttl > 0 then at = now + ttl end
local evicting = {}
for i = 1, extra do evicting[order[i]] = true end
local z, t = {}, {}
for i = 1, count do
  local key = keys[i]
  if last_at[key] == i and not evicting[key] then
    local j = 6 * i - 1
    local c, u = ARGV[j + 4], ARGV[j + 5]
    if c == '' then c = created[i] or now end
    if u == '' then u = now end
    write(KEYS[3 + i], last - count + i, ARGV[j + 1], ARGV[j + 2], ARGV[j + 3],
      c, u, at, not created[i])
    z[#z + 1] = last - count + i
    z[#z + 1] = key
    if at then
      t[#t + 1] = at
      t[#t + 1] = key
    end
  end
end
if #z > 0 then redis.call('ZADD', LRU, unpack(z)) end
if #t > 0 then redis.call('ZADD', TTL, unpack(t)) end
return #victims + extra
