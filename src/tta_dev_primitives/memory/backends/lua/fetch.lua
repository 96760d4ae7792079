-- KEYS: record keys. ARGV: base, vectors ('1': with each record's vector), careful ('1':
-- a key of another type is reported as not a record instead of failing the script, which
-- costs a protected call per key; the client asks for it after a WRONGTYPE). Recency is left
-- alone. Per key, fields s, v, m, e, x, u, c (e left out without vectors, c with them; s
-- absent and v set: the key holds something else than a record hash, v says what).
-- Returned packed: the fields' lengths (little-endian int32, -1 for an absent field, 7 per
-- key), the fields themselves concatenated (two bulk replies however many records, which
-- the client splits far faster than it parses thousands of replies), then with vectors
-- each record's vector (nil: none; its length in the header is 0).
local lens, parts, vecs = {}, {}, {}
local with = ARGV[2] == '1'
local call = redis.call
if ARGV[3] == '1' then call = redis.pcall end
for i = 1, #KEYS do
  local h
  if with then
    -- With vectors (index loads, exports): the created time is not needed.
    h = call('HMGET', KEYS[i], 's', 'v', 'm', 'e', 'x', 'u')
    if not h.err then h[7] = false end
  else
    h = call('HMGET', KEYS[i], 's', 'v', 'm', 'x', 'u', 'c')
    if not h.err then table.insert(h, 4, false) end
  end
  if h.err then
    -- Only a key of another type is "not a record"; any other error (a slot migrating)
    -- fails the script, to be run again.
    if not string.find(h.err, 'WRONGTYPE', 1, true) then return redis.error_reply(h.err) end
    h = {false, h.err, false, false, false, false, false}
  end
  local l = {}
  for j = 1, 7 do
    local f = h[j]
    if j == 4 and with then
      -- A vector is a reply of its own: Lua's table.concat of a thousand 1.5 KB vectors
      -- costs the server more than the client pays to read them one by one.
      vecs[i] = f or false
      l[j] = f and 0 or -1
    elseif f then
      l[j] = #f
      parts[#parts + 1] = f
    else
      l[j] = -1
    end
  end
  lens[i] = struct.pack('<i4i4i4i4i4i4i4', l[1], l[2], l[3], l[4], l[5], l[6], l[7])
end
local out = {table.concat(lens), table.concat(parts)}
for i = 1, #vecs do out[2 + i] = vecs[i] end
return out
