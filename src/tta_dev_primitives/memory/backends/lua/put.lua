--! keys: lru ttl st q
-- Store records. KEYS: the namespace keys above, then the record key of each entry
-- (base .. 'r:' .. key). ARGV: base, max_size (0 = unbounded), ttl_ms (0 = none), then one
-- body per record key (the record without its leading "<seq>:").
-- Returns how many records were evicted.
local BASE = ARGV[1]
local LRU, TTL, ST, PENDING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local REC = BASE .. 'r:'
--! include: _foreign
--! include: _drop
local bad = foreign({LRU, TTL, ST, PENDING}, {'zset', 'zset', 'hash', 'zset'})
if bad then return redis.error_reply(bad) end
local ttl = tonumber(ARGV[3])
local count = #KEYS - 4
local skip = #REC + 1
local last = redis.call('HINCRBY', ST, 'c', count)
local at
if ttl > 0 then at = string.format('%d', clock() + ttl) end
local z, keys = {}, {}
for i = 1, count do
  local rkey = KEYS[4 + i]
  local key = string.sub(rkey, skip)
  local seq = last - count + i
  local rec = string.format('%d:', seq) .. ARGV[3 + i]
  if at then
    redis.call('SET', rkey, rec, 'PXAT', at)
  else
    redis.call('SET', rkey, rec)
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
