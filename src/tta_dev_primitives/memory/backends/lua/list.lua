--! keys: lru ttl q
-- ARGV: base, 'size' or 'keys'. The live count, or the live keys least recently used first.
local BASE = ARGV[1]
local LRU, TTL, PENDING = KEYS[1], KEYS[2], KEYS[3]
local REC = BASE .. 'r:'
--! include: _drop
purge()
if ARGV[2] == 'size' then return redis.call('ZCARD', LRU) end
return redis.call('ZRANGE', LRU, 0, -1)
