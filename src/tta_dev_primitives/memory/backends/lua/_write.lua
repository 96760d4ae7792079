-- Write one record hash: s (write sequence), v (value JSON), c (created, server ms), u
-- (updated), and when present m (metadata JSON), e (vector, raw float32), x (expiry,
-- server ms, also the hash's own PXAT expiry). `fresh`: no hash under `rk` (nothing to
-- delete first).
local function write(rk, seq, value, meta, vec, created, now, at, fresh)
  if not fresh then redis.call('DEL', rk) end  -- a record there: drop its fields and expiry
  local h = {'HSET', rk, 's', seq, 'v', value, 'c', created, 'u', now}
  if meta ~= '' then h[#h + 1] = 'm'; h[#h + 1] = meta end
  if vec ~= '' then h[#h + 1] = 'e'; h[#h + 1] = vec end
  if at then h[#h + 1] = 'x'; h[#h + 1] = at end
  redis.call(unpack(h))
  if at then redis.call('PEXPIREAT', rk, at) end
end
