--! keys: lru st log
--! include: _names
-- KEYS: lru, st, log. ARGV: base. Deletes every key of the namespace (a new incarnation
-- begins with the next write); returns how many live records there were.
redis.call('EXISTS', TTL)  -- read before any write (see _drop.lua)
local keys = redis.call('ZRANGE', LRU, 0, -1)
local live = 0
local chunks = {}
for s = 1, #keys, 1000 do
  local recs = {}
  for i = s, math.min(s + 999, #keys) do recs[#recs + 1] = REC .. keys[i] end
  live = live + redis.call('EXISTS', unpack(recs))  -- an expired record is not counted
  chunks[#chunks + 1] = recs
end
-- History (_archive.lua): every key's earlier versions, then their index.
local versioned = redis.call('ZRANGE', base .. 'vk', 0, -1)
for s = 1, #versioned, 1000 do
  local lists = {}
  for i = s, math.min(s + 999, #versioned) do lists[#lists + 1] = base .. 'v:' .. versioned[i] end
  chunks[#chunks + 1] = lists
end
chunks[#chunks + 1] = {base .. 'vk'}  -- tombstones (forget.lua) stay: a clear is no undo
for i = 1, #chunks do redis.call('UNLINK', unpack(chunks[i])) end
redis.call('UNLINK', LRU, ST, LOG, TTL)
return live
