--! keys: lru
-- KEYS[1]: the LRU index. ARGV: base, touch ('1' refreshes recency), key...
-- One key: its record or nil. Several: a list of records (nil where missing).
-- The recency bump is best-effort (pcall): at maxmemory with noeviction Redis refuses the
-- write, and the read must still answer.
local REC = ARGV[1] .. 'r:'
if #ARGV == 3 then
  local rec = redis.call('GET', REC .. ARGV[3])
  if rec and ARGV[2] == '1' then
    local c = redis.pcall('HINCRBY', ARGV[1] .. 'st', 'c', 1)
    if type(c) == 'number' then redis.pcall('ZADD', KEYS[1], 'XX', c, ARGV[3]) end
  end
  return rec
end
local out, hits = {}, {}
for i = 3, #ARGV do
  local rec = redis.call('GET', REC .. ARGV[i])
  out[i - 2] = rec
  if rec then hits[#hits + 1] = ARGV[i] end
end
local last = 0
if ARGV[2] == '1' and #hits > 0 then last = redis.pcall('HINCRBY', ARGV[1] .. 'st', 'c', #hits) end
if type(last) == 'number' and last > 0 then
  local z = {'ZADD', KEYS[1], 'XX'}
  for i = 1, #hits do
    z[2 * i + 2] = last - #hits + i
    z[2 * i + 3] = hits[i]
  end
  redis.pcall(unpack(z))
end
return out
