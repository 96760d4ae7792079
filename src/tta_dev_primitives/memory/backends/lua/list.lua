--! keys: lru
--! include: _names
--! include: _drop
-- ARGV: base, 'size' or 'keys'. The live count, or the live keys least recently used first.
purge()
if ARGV[2] == 'size' then return redis.call('ZCARD', LRU) end
return redis.call('ZRANGE', LRU, 0, -1)
