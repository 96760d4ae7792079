-- Write one record hash: s (write sequence), v (value JSON), r (its times and metadata:
-- "<created> <updated> <expiry or -> <1 with a vector, else 0> <len of metadata> " then the
-- metadata JSON; times in server ms), e (the vector, raw float32) when there is one, t (its
-- index text: extra text indexed with it, not part of the value) when it has one. An
-- expiry is also the hash's own PXAT. `old`: what parsed() found of the record there (nil:
-- none), whose vector and expiry a rewrite without them drops. `text`: the index text,
-- '' none (a rewrite drops the stored one), nil: keep what is stored. Times may be numbers
-- or their decimal strings (a string costs Lua no conversion).
local function write(rk, seq, value, meta, vec, created, now, at, old, text)
  local has = vec ~= ''
  local r = created .. ' ' .. now .. ' ' .. (at or '-') .. (has and ' 1 ' or ' 0 ') ..
    (meta == '' and '0' or #meta) .. ' ' .. meta
  if has then
    redis.call('HSET', rk, 's', seq, 'v', value, 'r', r, 'e', vec)
  else
    redis.call('HSET', rk, 's', seq, 'v', value, 'r', r)
  end
  if text and text ~= '' then
    redis.call('HSET', rk, 't', text)
  elseif text and old then
    redis.call('HDEL', rk, 't')
  end
  if old then
    -- old: {expiry or '-', '1' with a vector} of the record there
    if old[2] == '1' and not has then redis.call('HDEL', rk, 'e') end
    if old[1] ~= '-' and not at then
      redis.call('PERSIST', rk)
      redis.call('ZREM', TTL, string.sub(rk, #REC + 1))  -- its ttl entry is stale now
    end
  end
  if at then redis.call('PEXPIREAT', rk, at) end
end

-- The created time, expiry and vector flag of a record's r field (nil: no record).
local function parsed(r)
  if not r then return nil, nil end
  local created, x, e = string.match(r, '^(%S+) %S+ (%S+) (%S)')
  return created, {x, e}
end
