-- KEYS: the record key of each key read. ARGV: base, touch ('1' refreshes recency), keys.
-- Per key one string, or nil without a live record: "<s> <c> <u> <x or -> <len of m> " then
-- the metadata JSON and the value JSON (one bulk reply per record: far cheaper to parse than
-- six); "! <why>" for a hash that is not a record. One key: that string; several: a list of
-- them. A key of another type fails the script (WRONGTYPE): the client names the key.
-- The recency bump is best-effort (pcall): at maxmemory with noeviction Redis refuses the
-- write, and the read must still answer.
local base = ARGV[1]
local out, hits = {}, {}
for i = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 's', 'v', 'm', 'c', 'u', 'x')
  if h[1] then
    local m = h[3] or ''
    out[i] = h[1] .. ' ' .. (h[4] or '0') .. ' ' .. (h[5] or '0') .. ' ' .. (h[6] or '-') ..
      ' ' .. #m .. ' ' .. m .. (h[2] or '')
    hits[#hits + 1] = ARGV[2 + i]
  elseif h[2] then
    out[i] = '! a record hash without its write sequence'
  else
    out[i] = false
  end
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
if #KEYS == 1 then return out[1] end
return out
