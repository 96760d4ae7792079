--! keys: lru st log
--! include: _names
-- KEYS: lru, st, log. ARGV: base. The keys with a live tombstone (forget.lua). Reads only.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', base .. 'tomb', string.format('(%d', now), '+inf')
