--! keys: lru st
-- The snapshot a full load of a search index starts from. KEYS: lru, st. ARGV: base.
-- Returns {incarnation (nil: no such namespace), last change-log entry n, server ms, 1 if
-- the namespace still has the layout of 0.1.0 (0 otherwise), its embedder (nil: none), the
-- live keys' lengths (little-endian int32 each), the live keys end to end, the version of
-- entry n ('' none, see _log.lua)}: two strings for all the keys (a reply of one bulk
-- string per key costs the client far more to parse). The loader then fetches the records
-- (fetch.lua) and applies the change log from n on, which brings in whatever changed while
-- it fetched.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[2], 'i', 'g', 'sp')
local old = redis.call('EXISTS', ARGV[1] .. 'q') + redis.call('EXISTS', ARGV[1] .. 'd')
if old > 0 then old = 1 end
local out = {st[1], tonumber(st[2] or '0'), now, old, st[3]}
local keys = redis.call('ZRANGE', KEYS[1], 0, -1)
local lens = {}
for i = 1, #keys do lens[i] = struct.pack('<i4', #keys[i]) end
out[6] = table.concat(lens)
out[7] = table.concat(keys)
out[8] = ''
if st[2] then
  local id = st[2] .. '-0'
  local at = redis.call('XRANGE', ARGV[1] .. 'log', id, id)
  if #at > 0 and at[1][2][1] == 'v' then out[8] = at[1][2][2] end
end
return out
