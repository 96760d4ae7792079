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
