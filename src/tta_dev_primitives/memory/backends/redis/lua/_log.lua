-- The change log: a stream of the namespace's changes, which every process holding a
-- search index of the namespace reads to catch it up (redis_index.py). An entry is a list
-- of (op, key) pairs, op 'p' (written) or 'd' (gone), after a first pair ('v', version): a
-- version taken by the script that wrote the entry (see _seq.lua), which no entry written
-- at another time can have; a reader checks that its last entry still has the version it
-- read, which a restart from an older snapshot or a failover that lost entries (written
-- again since) changes. Entry
-- ids are '<n>-0', n = 1, 2, 3...
-- (counter g of ST), so a reader whose last entry was n knows it missed some when the next
-- one is not n + 1. ST's field i names the namespace's incarnation (set with its first
-- entry; a clear deletes ST and the log, so the next write starts a new one). The log keeps
-- about max(256, twice the live records) entries (trimmed every 32nd entry, to the nearest
-- whole node of the stream): bounded by the live data.
local function log(fields, v)
  if #fields == 0 then return end
  if not v then  -- no write took a version (a delete, an eviction, a purge): take one
    v = versions(redis.call('HGET', ST, 'c'), clock_floor(redis.call('TIME')), 1)
    redis.call('HSET', ST, 'c', v)
  end
  local g = redis.call('HINCRBY', ST, 'g', 1)
  if g == 1 then
    local t = redis.call('TIME')
    redis.call('HSET', ST, 'i', t[1] .. '.' .. t[2])
  end
  for s = 1, #fields, 2000 do
    if s > 1 then
      g = redis.call('HINCRBY', ST, 'g', 1)
    end
    redis.call('XADD', LOG, string.format('%d-0', g), 'v', v,
      unpack(fields, s, math.min(s + 1999, #fields)))
    -- Trimmed every 32 entries (a ZCARD and a trim per write would cost every write).
    if g % 32 == 0 then
      local cap = 2 * redis.call('ZCARD', LRU)
      if cap < 256 then cap = 256 end
      redis.call('XTRIM', LOG, 'MAXLEN', '~', cap)
    end
  end
end
