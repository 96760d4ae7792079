--! keys: lru st log
--! include: _names
-- KEYS: lru, st, log. ARGV: base, then the key ('' with ARGV[3] = '1': every key with
-- history). Returns the server clock (ms), then (key, earlier version) pairs, each version
-- newest first as _archive.lua keeps it. Reads only.
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
local keys
if ARGV[3] == '1' then keys = redis.call('ZRANGE', base .. 'vk', 0, -1) else keys = {ARGV[2]} end
for _, key in ipairs(keys) do
  for _, item in ipairs(redis.call('LRANGE', base .. 'v:' .. key, 0, -1)) do
    out[#out + 1] = key
    out[#out + 1] = item
  end
end
return out
