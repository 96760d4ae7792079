--! keys: lru st log
--! include: _names
--! include: _foreign
--! include: _seq
--! include: _log
--! include: _write
-- Rewrite one record if it still is the version the client read (compare-and-set on its
-- write sequence): the client merged the change into what it read.
-- KEYS: lru, st, log, the record key. ARGV: base, key, expected seq, value JSON, metadata
-- JSON ('' none), vector mode ('k' keep the stored one, 's' set ARGV[7], 'n' none), vector,
-- expiry ('k' keep, else ttl_ms with 0 = none), index text ('k' keep, else 's' then the
-- new text, empty for none; absent: keep).
-- Returns nil when there is no live record, 0 when it changed since it was read (nothing
-- written), else {seq, created, updated, expiry (nil: none)}.
local bad = foreign({LRU, ST, LOG, TTL, KEYS[4]}, {'zset', 'hash', 'stream', 'zset', 'hash'})
if bad then return redis.error_reply(bad) end
local rk = KEYS[4]
local cur = redis.call('HMGET', rk, 's', 'r', 'e')
if not cur[1] then return nil end
if cur[1] ~= ARGV[3] then return 0 end
local created, old = parsed(cur[2])
if not created then return redis.error_reply('a record hash whose r field is malformed') end
local expiry = old[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local vec = ''
if ARGV[6] == 'k' then vec = cur[3] or '' elseif ARGV[6] == 's' then vec = ARGV[7] end
local at, ttl = nil, 0
if ARGV[8] == 'k' then
  if expiry ~= '-' then at = tonumber(expiry) end
else
  ttl = tonumber(ARGV[8])
  if ttl > 0 then at = now + ttl end
end
local st = redis.call('HMGET', ST, 'c', 'x')
local seq = versions(st[1], clock_floor(t), 1)
redis.call('HSET', ST, 'c', seq)
local text = nil
if ARGV[9] and ARGV[9] ~= 'k' then text = string.sub(ARGV[9], 2) end
write(rk, seq, ARGV[4], ARGV[5], vec, created, now, at, old, text)
redis.call('ZADD', LRU, seq, ARGV[2])
if at then redis.call('ZADD', TTL, at, ARGV[2]) end
log({'p', ARGV[2]}, seq)
outlive(st[2], not st[1], at, ttl)
return {seq, tonumber(created), now, at}
