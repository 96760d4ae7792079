--! keys: lru
--! include: _names
--! include: _foreign
-- ARGV: base, key. Returns 1 if a live record was deleted.
local bad = foreign({LRU, PENDING}, {'zset', 'zset'})
if bad then return redis.error_reply(bad) end
local key = ARGV[2]
local live = redis.call('DEL', REC .. key)
if redis.call('ZREM', LRU, key) == 1 then redis.call('ZADD', PENDING, 0, key) end
return live
