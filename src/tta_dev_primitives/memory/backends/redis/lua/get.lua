--! base: keys
-- KEYS: the record key of each key read. ARGV: touch ('1' refreshes recency), the keys (the
-- namespace's base is the first record key without 'h:' and the key).
-- Per key one string, or nil without a live record: "<s> " then the record's r field
-- ("<created> <updated> <expiry or -> <0|1> <len of metadata> <metadata>", see _write.lua)
-- and the value JSON (one bulk reply per record: far cheaper to parse than three); with an
-- index text (field t) "<s>:<len of t> ", and t between r and the value; "! <why>"
-- for a hash that is not a record. One key: that string; several: a list of
-- them. A key of another type fails the script (WRONGTYPE): the client names the key.
-- The recency bump is best-effort (pcall): at maxmemory with noeviction Redis refuses the
-- write, and the read must still answer.
local call, try = redis.call, redis.pcall
local base = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[2] - 2)
local function packed(h)
  if h[4] then return h[1] .. ':' .. #h[4] .. ' ' .. (h[3] or '') .. h[4] .. (h[2] or '') end
  return h[1] .. ' ' .. (h[3] or '') .. (h[2] or '')
end
if #KEYS == 1 then
  -- One key, the common case: no tables beyond the reply.
  local h = call('HMGET', KEYS[1], 's', 'v', 'r', 't')
  if not h[1] then
    if h[2] then return '! a record hash without its write sequence' end
    return false
  end
  if ARGV[1] == '1' then
    local last = try('HINCRBY', base .. 'st', 'c', 1)
    if last == 1 then
      -- Made by the bump (the namespace's keys are gone: evicted): leave nothing behind.
      if try('HLEN', base .. 'st') == 1 then try('DEL', base .. 'st') end
    elseif type(last) == 'number' then
      try('ZADD', base .. 'lru', 'XX', last, ARGV[2])
    end
  end
  return packed(h)
end
local out, hits = {}, {}
for i = 1, #KEYS do
  local h = call('HMGET', KEYS[i], 's', 'v', 'r', 't')
  if h[1] then
    out[i] = packed(h)
    hits[#hits + 1] = ARGV[1 + i]
  elseif h[2] then
    out[i] = '! a record hash without its write sequence'
  else
    out[i] = false
  end
end
if ARGV[1] == '1' and #hits > 0 then
  local last = try('HINCRBY', base .. 'st', 'c', #hits)
  if last == #hits then
    -- Made by the bump (the namespace's keys are gone: evicted): leave nothing behind.
    if try('HLEN', base .. 'st') == 1 then try('DEL', base .. 'st') end
  elseif type(last) == 'number' then
    local z = {'ZADD', base .. 'lru', 'XX'}
    for i = 1, #hits do
      z[2 * i + 2] = last - #hits + i
      z[2 * i + 3] = hits[i]
    end
    try(unpack(z))
  end
end
return out
