--! keys: lru st log
--! include: _names
--! include: _drop
--! include: _seq
--! include: _log
-- KEYS: lru, st, log. ARGV: base, 'size' or 'keys'. Purges the expired records first.
-- The live count, or the live keys least recently used first.
local fields = {}
local _, _, _, purge = drops()
purge(fields)
if #fields > 0 then
  if redis.call('EXISTS', LRU) == 0 then
    redis.call('UNLINK', ST, LOG, TTL)
  else
    log(fields)
  end
end
if ARGV[2] == 'size' then return redis.call('ZCARD', LRU) end
return redis.call('ZRANGE', LRU, 0, -1)
