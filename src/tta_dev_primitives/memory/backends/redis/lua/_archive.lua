-- History (MemoryPrimitive(history=N)): earlier versions of a key live in the list
-- `<base>v:<key>`, newest first, each "<valid_to ms> " followed by get.lua's packing of the
-- record ("<s> ", or "<s>:<len of index text> ", then its r field, index text and value); `<base>vk` is a zset of the keys with history (score: when
-- last versioned, ms), at most max_size of them (the least recently versioned lose theirs).
-- A list expires with its latest version (never, if one never expires), `vk` with the
-- latest of them. The versioned scripts take their history arguments off the end of ARGV:
-- the superseded keys, then "<keep> <max_size or 0> <number of superseded keys>".
local function history_args()
  local keep, cap, n = string.match(table.remove(ARGV), '^(%d+) (%d+) (%d+)$')
  n = tonumber(n)
  local sup = {}
  for i = n, 1, -1 do sup[i] = table.remove(ARGV) end
  return tonumber(keep), tonumber(cap), sup
end

-- After a version was added to `key`'s list: trim it to `keep`, set its expiry (its last
-- version's; none if one never expires), index the key in `vk` (score `to`), and keep at
-- most `cap` keys with history (the least recently versioned lose theirs).
local function settle_versions(base, key, to, keep, cap)
  local vk, idx = base .. 'v:' .. key, base .. 'vk'
  local vx = redis.call('PEXPIRETIME', idx)
  redis.call('LTRIM', vk, 0, keep - 1)
  local last = 0
  for _, item in ipairs(redis.call('LRANGE', vk, 0, -1)) do
    local x = string.match(item, '^%S+ %S+ %S+ %S+ (%S+)')
    if x == '-' then last = nil break end
    if tonumber(x) > last then last = tonumber(x) end
  end
  if last then redis.call('PEXPIREAT', vk, last) else redis.call('PERSIST', vk) end
  redis.call('ZADD', idx, to, key)
  if not last then
    redis.call('PERSIST', idx)
  elseif vx == -2 or (vx >= 0 and vx < last) then
    redis.call('PEXPIREAT', idx, last)
  end
  if cap > 0 then
    local over = redis.call('ZCARD', idx) - cap
    if over > 0 then
      local gone = redis.call('ZPOPMIN', idx, over)
      for i = 1, #gone, 2 do redis.call('DEL', base .. 'v:' .. gone[i]) end
    end
  end
end

-- Keep the record under `key` as an earlier version ended at `to` (server ms); false when
-- there is no record. Reads first (see _drop.lua).
local function archive(base, key, to, keep, cap)
  local h = redis.call('HMGET', base .. 'h:' .. key, 's', 'v', 'r', 't')
  if not h[1] then return false end
  if keep > 0 then
    local s = h[4] and (h[1] .. ':' .. #h[4]) or h[1]
    redis.call('LPUSH', base .. 'v:' .. key, to .. ' ' .. s .. ' ' .. h[3] .. (h[4] or '') .. h[2])
    settle_versions(base, key, to, keep, cap)
  end
  return true
end
