-- KEYS: record keys. ARGV: base, vectors ('1': with each record's vector). Recency is left
-- alone. Returns, flat, per key: s, v, m, e, x, u, c (nil where absent; e nil without
-- vectors; s nil and v set: the key holds something else than a record hash).
local out = {}
local with = ARGV[2] == '1'
for i = 1, #KEYS do
  local h
  if with then
    h = redis.pcall('HMGET', KEYS[i], 's', 'v', 'm', 'e', 'x', 'u', 'c')
  else
    h = redis.pcall('HMGET', KEYS[i], 's', 'v', 'm', 'x', 'u', 'c')
    if not h.err then table.insert(h, 4, false) end
  end
  if h.err then h = {false, h.err, false, false, false, false, false} end
  for j = 1, 7 do out[#out + 1] = h[j] end
end
return out
