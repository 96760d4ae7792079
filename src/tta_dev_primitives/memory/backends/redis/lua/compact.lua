--! keys: lru st log
--! include: _names
--! include: _seq
--! include: _log
--! include: _write
-- Replace records at once, if each is still the version the client read (compaction).
-- KEYS: lru, st, log, then the record key of each of the n records read, then the record
-- key of the new record (the summary), if any.
-- ARGV: base, n, then per read record: its seq, an action ('d' delete, 'w' rewrite keeping
-- its expiry and created time, '-' check only), and for a rewrite its value, metadata and
-- vector ('' otherwise); then the new record's ttl_ms (0 = none), value, metadata, vector.
-- A rewrite keeps the record's index text; the new record has none.
-- Returns the keys whose record changed since it was read (then nothing was changed), or
-- an empty list once applied.
redis.call('EXISTS', TTL)  -- read before any write (see _drop.lua)
local n = tonumber(ARGV[2])
local changed = {}
local cur = {}
for i = 1, n do
  cur[i] = redis.call('HMGET', KEYS[3 + i], 's', 'r')
  if cur[i][1] ~= ARGV[5 * i - 2] then changed[#changed + 1] = string.sub(KEYS[3 + i], #REC + 1) end
end
if #changed > 0 then return changed end
local insert = #KEYS > 3 + n
local created
local old_insert
if insert then created, old_insert = parsed(redis.call('HGET', KEYS[4 + n], 'r')) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = {}
local st = redis.call('HMGET', ST, 'c', 'x')
local seq = versions(st[1], clock_floor(t), 0)
for i = 1, n do
  local rk = KEYS[3 + i]
  local key = string.sub(rk, #REC + 1)
  local action = ARGV[5 * i - 1]
  local j = 5 * i
  if action == 'd' then
    redis.call('DEL', rk)
    redis.call('ZREM', LRU, key)
    redis.call('ZREM', TTL, key)
    fields[#fields + 1] = 'd'
    fields[#fields + 1] = key
  elseif action == 'w' then
    seq = seq + 1
    local made, old = parsed(cur[i][2])
    local at = old[1] ~= '-' and tonumber(old[1]) or nil
    write(rk, seq, ARGV[j], ARGV[j + 1], ARGV[j + 2], made, now, at, old)
    redis.call('ZADD', LRU, seq, key)
    fields[#fields + 1] = 'p'
    fields[#fields + 1] = key
  end
end
if insert then
  local rk = KEYS[4 + n]
  local key = string.sub(rk, #REC + 1)
  local j = 5 * n + 3
  local ttl = tonumber(ARGV[j])
  local at
  if ttl > 0 then at = now + ttl end
  seq = seq + 1
  write(rk, seq, ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], created or now, now, at, old_insert, '')
  redis.call('ZADD', LRU, seq, key)
  if at then redis.call('ZADD', TTL, at, key) end
  fields[#fields + 1] = 'p'
  fields[#fields + 1] = key
end
if redis.call('EXISTS', LRU) == 0 then
  redis.call('UNLINK', ST, LOG, TTL)
else
  if #fields > 0 then
    seq = seq + 1  -- the entry's own version: deletes alone took none
    redis.call('HSET', ST, 'c', seq)
  end
  log(fields, seq)
  if insert then
    local ttl = tonumber(ARGV[5 * n + 3])
    outlive(st[2], not st[1], ttl > 0 and now + ttl or nil, ttl)
  end
end
return {}
