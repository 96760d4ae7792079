--! keys: lru st log
--! include: _names
--! include: _foreign
--! include: _seq
--! include: _log
-- KEYS: lru, st, log, the record key. ARGV: base, key, and optionally the write sequence
-- the record must still have (else nothing is deleted). Returns 1 if a live record was
-- deleted, plus 2 if the namespace is left without records (then it leaves no key behind).
local bad = foreign({LRU, ST, LOG, KEYS[4], TTL}, {'zset', 'hash', 'stream', 'hash', 'zset'})
if bad then return redis.error_reply(bad) end
if ARGV[3] and redis.call('HGET', KEYS[4], 's') ~= ARGV[3] then return 0 end
local live = redis.call('DEL', KEYS[4])
local held = redis.call('ZREM', LRU, ARGV[2])
redis.call('ZREM', TTL, ARGV[2])
if held == 0 and live == 0 then return 0 end
if redis.call('EXISTS', LRU) == 0 then
  redis.call('UNLINK', ST, LOG, TTL)
  return live + 2
end
log({'d', ARGV[2]})
return live
