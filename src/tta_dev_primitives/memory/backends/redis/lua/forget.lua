--! keys: lru st log
--! include: _names
--! include: _foreign
--! include: _seq
--! include: _log
-- KEYS: lru, st, log. ARGV: base, the tombstone ttl in ms ('0': none), the tombstone cap,
-- then the keys to forget. Removes each key's live record and earlier versions
-- (_archive.lua) and, with a ttl, leaves a tombstone in the zset `<base>tomb` (key ->
-- expiry, server ms; expired ones dropped, at most the cap, the newest; the zset expires
-- with its last). Returns {records and versions removed, 1 if the namespace is left without
-- records}.
local bad = foreign({LRU, ST, LOG, TTL}, {'zset', 'hash', 'stream', 'zset'})
if bad then return redis.error_reply(bad) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local TOMB, IDX = base .. 'tomb', base .. 'vk'
for i = 4, #ARGV do redis.call('EXISTS', REC .. ARGV[i]) end
local removed, fields = 0, {}
for i = 4, #ARGV do
  local key = ARGV[i]
  local live = redis.call('DEL', REC .. key)
  redis.call('ZREM', LRU, key)
  redis.call('ZREM', TTL, key)
  if live > 0 then
    removed = removed + 1
    fields[#fields + 1] = 'd'
    fields[#fields + 1] = key
  end
  removed = removed + redis.call('LLEN', base .. 'v:' .. key)
  redis.call('DEL', base .. 'v:' .. key)
  redis.call('ZREM', IDX, key)
  if ttl > 0 then redis.call('ZADD', TOMB, now + ttl, key) end
end
if ttl > 0 then
  redis.call('ZREMRANGEBYSCORE', TOMB, '-inf', now)
  local over = redis.call('ZCARD', TOMB) - cap
  if over > 0 then redis.call('ZPOPMIN', TOMB, over) end
  local last = redis.call('ZRANGE', TOMB, -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', TOMB, last[2]) end
end
if redis.call('EXISTS', LRU) == 0 then
  redis.call('UNLINK', ST, LOG, TTL)
  return {removed, 1}
end
log(fields)
return {removed, 0}
