-- KEYS: record keys. ARGV: base, vectors ('1': with each record's vector), careful ('1':
-- a key of another type is reported as not a record instead of failing the script, which
-- costs a protected call per key; the client asks for it after a WRONGTYPE). Recency is left
-- alone. Per key, fields s, v, r, t (see _write.lua) and with vectors e (s absent and v set:
-- the key holds something else than a record hash, v says what).
-- Returned packed: the fields s, v, r, t's lengths (little-endian int32, -1 for an absent
-- field, 4 per key), those fields concatenated (two bulk replies however many records,
-- which the client splits far faster than it parses thousands of replies), then with
-- vectors each record's vector as a reply of its own (nil: none): Lua's table.concat of a
-- thousand 1.5 KB vectors costs the server more than the client pays to read them one by
-- one.
local lens, parts, vecs = {}, {}, {}
local with = ARGV[2] == '1'
local call = redis.call
if ARGV[3] == '1' then call = redis.pcall end
for i = 1, #KEYS do
  local h
  if with then
    h = call('HMGET', KEYS[i], 's', 'v', 'r', 't', 'e')
  else
    h = call('HMGET', KEYS[i], 's', 'v', 'r', 't')
  end
  if h.err then
    -- Only a key of another type is "not a record"; any other error (a slot migrating)
    -- fails the script, to be run again.
    if not string.find(h.err, 'WRONGTYPE', 1, true) then return redis.error_reply(h.err) end
    h = {false, h.err, false, false, false}
  end
  local l = {-1, -1, -1, -1}
  for j = 1, 4 do
    local f = h[j]
    if f then
      l[j] = #f
      parts[#parts + 1] = f
    end
  end
  if with then vecs[i] = h[5] or false end
  lens[i] = struct.pack('<i4i4i4i4', l[1], l[2], l[3], l[4])
end
local out = {table.concat(lens), table.concat(parts)}
for i = 1, #vecs do out[2 + i] = vecs[i] end
return out
