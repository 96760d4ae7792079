--! keys: lru q
-- Delete one record. KEYS: the namespace keys above, then the record key.
-- ARGV: base. Returns 1 if a live record was deleted.
local LRU, PENDING, RKEY = KEYS[1], KEYS[2], KEYS[3]
--! include: _foreign
local bad = foreign({LRU, PENDING}, {'zset', 'zset'})
if bad then return redis.error_reply(bad) end
local key = string.sub(RKEY, #ARGV[1] + 3)
local live = redis.call('DEL', RKEY)
if redis.call('ZREM', LRU, key) == 1 then redis.call('ZADD', PENDING, 0, key) end
return live
