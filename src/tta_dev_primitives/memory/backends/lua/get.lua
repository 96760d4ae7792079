--! keys: lru st
-- Read records. KEYS: the namespace keys above, then the record keys asked for.
-- ARGV: base, touch ('1' refreshes recency).
-- One record key: its record or nil. Several: a list of records (nil where missing).
-- The recency bump is best-effort (pcall): at maxmemory with noeviction Redis refuses the
-- write, and the read must still answer.
local LRU, ST = KEYS[1], KEYS[2]
local skip = #ARGV[1] + 3 -- past base .. 'r:'
if #KEYS == 3 then
  local rec = redis.call('GET', KEYS[3])
  if rec and ARGV[2] == '1' then
    local c = redis.pcall('HINCRBY', ST, 'c', 1)
    if type(c) == 'number' then redis.pcall('ZADD', LRU, 'XX', c, string.sub(KEYS[3], skip)) end
  end
  return rec
end
local out, hits = {}, {}
for i = 3, #KEYS do
  local rec = redis.call('GET', KEYS[i])
  out[i - 2] = rec
  if rec then hits[#hits + 1] = string.sub(KEYS[i], skip) end
end
local last = 0
if ARGV[2] == '1' and #hits > 0 then last = redis.pcall('HINCRBY', ST, 'c', #hits) end
if type(last) == 'number' and last > 0 then
  local z = {'ZADD', LRU, 'XX'}
  for i = 1, #hits do
    z[2 * i + 2] = last - #hits + i
    z[2 * i + 3] = hits[i]
  end
  redis.pcall(unpack(z))
end
return out
