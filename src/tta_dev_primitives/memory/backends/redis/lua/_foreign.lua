-- Refuse to write over keys of another type (another client overwrote one of the library's
-- keys): checked before anything is written, so a refused write stores nothing.
local function foreign(keys, want)
  for i = 1, #keys do
    local t = redis.call('TYPE', keys[i])['ok']
    if t ~= 'none' and t ~= want[i] then
      return 'WRONGTYPE ' .. keys[i] .. ' holds a ' .. t .. ', not the ' .. want[i] ..
        ' this library keeps there (overwritten by another client?); nothing was written'
    end
  end
  return nil
end

-- Many keys: a chunked ZMSCORE (Lua's unpack takes at most a few thousand values).
local function zmscore(zset, keys)
  local out = {}
  for s = 1, #keys, 1000 do
    local part = redis.call('ZMSCORE', zset, unpack(keys, s, math.min(s + 999, #keys)))
    for i = 1, #part do out[#out + 1] = part[i] end
  end
  return out
end
