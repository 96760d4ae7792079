--! keys: lru
--! include: _names
--! include: _foreign
--! include: _drop
-- ARGV: base, max_size (0 = unbounded), ttl_ms (0 = none), then key, body pairs (body: the
-- record without its leading "<seq>:"). Returns how many records were evicted.
local bad = foreign({LRU, TTL, ST, PENDING}, {'zset', 'zset', 'hash', 'zset'})
if bad then return redis.error_reply(bad) end
local ttl = tonumber(ARGV[3])
local count = (#ARGV - 3) / 2
local last = redis.call('HINCRBY', ST, 'c', count)
local at
if ttl > 0 then at = string.format('%d', clock() + ttl) end
local z, keys = {}, {}
for i = 1, count do
  local key = ARGV[2 + 2 * i]
  local seq = last - count + i
  local rec = string.format('%d:', seq) .. ARGV[3 + 2 * i]
  if at then
    redis.call('SET', REC .. key, rec, 'PXAT', at)
  else
    redis.call('SET', REC .. key, rec)
  end
  z[2 * i - 1] = seq
  z[2 * i] = key
  keys[i] = key
end
local added = redis.call('ZADD', LRU, unpack(z))
if at then
  local t = {'ZADD', TTL}
  for i = 1, count do
    t[2 * i + 1] = at
    t[2 * i + 2] = keys[i]
  end
  redis.call(unpack(t))
end
redis.call('ZADD', PENDING, unpack(z))
local max = tonumber(ARGV[2])
if max > 0 and added > 0 then
  local n = redis.call('ZCARD', LRU)
  if n > max then
    -- Expired records go before live ones are evicted.
    purge()
    n = redis.call('ZCARD', LRU)
    if n > max then
      local victims = redis.call('ZRANGE', LRU, 0, n - max - 1)
      drop(victims)
      return #victims
    end
  end
end
return 0
