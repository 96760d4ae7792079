-- KEYS: the record key of each key read. ARGV: base, touch ('1' refreshes recency), keys.
-- Returns, flat, per key: s, v, m, c, u, x (nil where absent; s nil: no live record; s nil
-- and v set: the key holds something else than a record hash, v says what).
-- The recency bump is best-effort (pcall): at maxmemory with noeviction Redis refuses the
-- write, and the read must still answer.
local base = ARGV[1]
local out, hits = {}, {}
for i = 1, #KEYS do
  local h = redis.pcall('HMGET', KEYS[i], 's', 'v', 'm', 'c', 'u', 'x')
  if h.err then
    -- Only a key of another type is "not a record"; any other error (a slot migrating)
    -- fails the script, to be run again.
    if not string.find(h.err, 'WRONGTYPE', 1, true) then return redis.error_reply(h.err) end
    h = {false, h.err, false, false, false, false}
  end
  for j = 1, 6 do out[#out + 1] = h[j] end
  if h[1] then hits[#hits + 1] = ARGV[2 + i] end
end
if ARGV[2] == '1' and #hits > 0 then
  local last = redis.pcall('HINCRBY', base .. 'st', 'c', #hits)
  if type(last) == 'number' then
    local z = {'ZADD', base .. 'lru', 'XX'}
    for i = 1, #hits do
      z[2 * i + 2] = last - #hits + i
      z[2 * i + 3] = hits[i]
    end
    redis.pcall(unpack(z))
  end
end
return out
