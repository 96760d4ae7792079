--! keys: lru st log
--! include: _names
--! include: _foreign
--! include: _drop
--! include: _log
--! include: _write
-- KEYS: lru, st, log, then the record key of each record written. ARGV: base, max_size
-- (0 = unbounded), ttl_ms (0 = none), then per record: key, value JSON, metadata JSON
-- ('' = none), vector (raw float32, '' = none). Over a live record the write keeps its
-- created time. Returns how many records were evicted.
local count = (#ARGV - 3) / 4
local want, check = {'zset', 'hash', 'stream', 'zset'}, {LRU, ST, LOG, TTL}
for i = 1, count do
  check[4 + i] = KEYS[3 + i]
  want[4 + i] = 'hash'
end
local bad = foreign(check, want)
if bad then return redis.error_reply(bad) end
-- Reads first (see _drop): the stored records' created times, what expired, the victims.
local keys, created = {}, {}
for i = 1, count do
  keys[i] = ARGV[4 * i]
  created[i] = redis.call('HGET', KEYS[3 + i], 'c')
end
local now = clock()
local max = tonumber(ARGV[2])
local gone, again, victims = {}, {}, {}
local purged = false
if max > 0 then
  local scores = zmscore(LRU, keys)
  local mine, added = {}, 0
  for i = 1, count do
    if not mine[keys[i]] then
      mine[keys[i]] = true
      if not scores[i] then added = added + 1 end
    end
  end
  local n = redis.call('ZCARD', LRU) + added
  if added > 0 and n > max then
    -- Expired records go before live ones are evicted.
    purged = true
    local due
    due, again = expired(now)
    local out = {}
    if #due > 0 then
      local held = zmscore(LRU, due)
      for i = 1, #due do
        if not mine[due[i]] then
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
        if not mine[cand[i]] and not skip[cand[i]] then victims[#victims + 1] = cand[i] end
      end
      for s = 1, #victims, 1000 do
        local recs = {}
        for i = s, math.min(s + 999, #victims) do recs[#recs + 1] = REC .. victims[i] end
        redis.call('EXISTS', unpack(recs))
      end
    end
  end
end
-- Writes.
local fields = {}
if purged then settle(now, again) end
drop(gone, fields)
drop(victims, fields)
local last = redis.call('HINCRBY', ST, 'c', count)
local ttl = tonumber(ARGV[3])
local at
if ttl > 0 then at = now + ttl end
local z, t = {}, {}
for i = 1, count do
  local seq = last - count + i
  local j = 4 * i
  write(KEYS[3 + i], seq, ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], created[i] or now, now, at)
  z[2 * i - 1] = seq
  z[2 * i] = keys[i]
  if at then
    t[2 * i - 1] = at
    t[2 * i] = keys[i]
  end
  fields[#fields + 1] = 'p'
  fields[#fields + 1] = keys[i]
end
redis.call('ZADD', LRU, unpack(z))
if at then redis.call('ZADD', TTL, unpack(t)) end
local evicted = #victims
if max > 0 then
  -- A batch larger than max_size: its own oldest records go (declared keys only here).
  local n = redis.call('ZCARD', LRU)
  if n > max then
    local extra = redis.call('ZRANGE', LRU, 0, n - max - 1)
    drop(extra, fields)
    evicted = evicted + #extra
  end
end
log(fields)
return evicted
