--! keys: lru st log
--! include: _names
-- KEYS: lru, st, log. ARGV: base, then keys: drop their earlier versions; how many.
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('LLEN', base .. 'v:' .. ARGV[i])
  redis.call('DEL', base .. 'v:' .. ARGV[i])
  redis.call('ZREM', base .. 'vk', ARGV[i])
end
return n
