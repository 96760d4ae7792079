--! keys: lru st log
--! include: _names
--! include: _seq
--! include: _archive
-- KEYS: lru, st, log. ARGV: base, keep, cap, then 8 per version: key, valid_to, created,
-- updated (server ms), ttl ms ('0': none), metadata JSON ('' none), value JSON, index text
-- ('' none). Adds each as
-- an earlier version of its key (an import; see _archive.lua), placed by valid_to, with a
-- version number of its own; live records are untouched. Returns how many were added.
local keep, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = (#ARGV - 3) / 8
if keep < 1 or n < 1 then return 0 end
-- Version numbers from the namespace's counter (kept only where the namespace exists: its
-- st comes and goes with its records; the clock floor keeps later ones above these).
local c = redis.call('HGET', ST, 'c')
local last = versions(c, clock_floor(t), n)
if c then redis.call('HSET', ST, 'c', last) end
for i = 0, n - 1 do
  local a = 3 + 8 * i
  local key, to, created, updated, ttl = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
    tonumber(ARGV[a + 5])
  local meta, value, text = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local at = ttl > 0 and string.format('%d', now + ttl) or '-'
  -- string.format: Lua would print a 16-digit version in exponent notation
  local s = string.format('%d', last - n + 1 + i)
  if text ~= '' then s = s .. ':' .. #text end
  local item = to .. ' ' .. s .. ' ' .. created .. ' ' .. updated .. ' ' ..
    at .. ' 0 ' .. (meta == '' and '0' or #meta) .. ' ' .. meta .. text .. value
  local vk = base .. 'v:' .. key
  local items = redis.call('LRANGE', vk, 0, -1)
  local pos = #items
  for j = 1, #items do
    if tonumber(string.match(items[j], '^(%S+)')) < tonumber(to) then pos = j - 1 break end
  end
  if pos == #items then
    redis.call('RPUSH', vk, item)
  elseif pos == 0 then
    redis.call('LPUSH', vk, item)
  else
    redis.call('LINSERT', vk, 'BEFORE', items[pos + 1], item)
  end
  settle_versions(base, key, tonumber(to), keep, cap)
end
return n
