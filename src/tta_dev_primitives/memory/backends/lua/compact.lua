--! keys: lru ttl st q
-- Replace records at once, if each is still the version the client read (compaction).
-- KEYS: lru, ttl, st, q, then the record key (base .. 'r:' .. key) of each of the n records
-- read, then the record key of the new record (the summary), if any.
-- ARGV: base, n, then per read record: its seq, an action ('d' delete, 'w' rewrite keeping
-- its expiry, '-' check only) and the body of a rewrite ('' otherwise); then the new
-- record's ttl_ms (0 = none) and body (its record without the leading "<seq>:").
-- Returns the keys whose record changed since it was read (then nothing was changed), or
-- an empty list once applied.
local LRU, TTL, ST, PENDING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local skip = #(ARGV[1] .. 'r:') + 1
local n = tonumber(ARGV[2])
local changed = {}
for i = 1, n do
  local seq = string.match(redis.call('GETRANGE', KEYS[4 + i], 0, 24), '^(%d+):')
  if seq ~= ARGV[3 * i] then changed[#changed + 1] = string.sub(KEYS[4 + i], skip) end
end
if #changed > 0 then return changed end
local insert = #KEYS > 4 + n
local writes = insert and 1 or 0
for i = 1, n do
  if ARGV[3 * i + 1] == 'w' then writes = writes + 1 end
end
local seq = 0
if writes > 0 then seq = redis.call('HINCRBY', ST, 'c', writes) - writes end
for i = 1, n do
  local rkey = KEYS[4 + i]
  local key = string.sub(rkey, skip)
  local action = ARGV[3 * i + 1]
  if action == 'd' then
    redis.call('DEL', rkey)
    redis.call('ZREM', LRU, key)
    redis.call('ZADD', PENDING, 0, key)
  elseif action == 'w' then
    seq = seq + 1
    redis.call('SET', rkey, string.format('%d:', seq) .. ARGV[3 * i + 2], 'KEEPTTL')
    redis.call('ZADD', LRU, seq, key)
    redis.call('ZADD', PENDING, seq, key)
  end
end
if insert then
  local rkey = KEYS[5 + n]
  local key = string.sub(rkey, skip)
  seq = seq + 1
  local ttl = tonumber(ARGV[3 * n + 3])
  local rec = string.format('%d:', seq) .. ARGV[3 * n + 4]
  if ttl > 0 then
    local t = redis.call('TIME')
    local at = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl)
    redis.call('SET', rkey, rec, 'PXAT', at)
    redis.call('ZADD', TTL, at, key)
  else
    redis.call('SET', rkey, rec)
  end
  redis.call('ZADD', LRU, seq, key)
  redis.call('ZADD', PENDING, seq, key)
end
return {}
