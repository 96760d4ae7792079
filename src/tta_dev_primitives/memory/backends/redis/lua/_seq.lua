-- Write sequences (versions) that never repeat for a namespace. Each write takes
-- max(c + 1, floor), c being ST's counter and floor the server clock in units of 1/2048 ms
-- (TIME's microseconds * 2.048), so a namespace emptied (its st deleted: clear, its last
-- record deleted or expired) or rolled back (a restart from an older snapshot, a failover to
-- a replica behind) starts again above every version it gave out before, as long as the
-- server clock does not step back and the namespace took fewer than 2048 versions per ms
-- (one per record written or recency refreshed) over the stretch before (Redis runs far
-- fewer: each takes a few microseconds of script work). Exact in Lua numbers and zset
-- scores (< 2^53) until the year 2109.
local function clock_floor(t)
  return tonumber(t[1]) * 2048000 + math.floor(tonumber(t[2]) * 2.048)
end

-- The last of `n` versions taken now: `c` is ST's c as HMGET read it (false: none), `floor`
-- what clock_floor gave for the script's TIME.
local function versions(c, floor, n)
  c = tonumber(c) or 0
  if c < floor then c = floor end
  return c + n
end

-- The namespace's own keys (lru, st, log, ttl) expire with its last record while every
-- record written since the namespace began has an expiry: ST field x holds their expiry,
-- kept at least as late as every record's (extended by one ttl past the record's, so a run
-- of writes extends it once a ttl); a record without expiry makes them persist (until the
-- namespace is emptied). So a namespace that is never touched again leaves nothing behind.
-- `x`: ST's x as HMGET read it; `fresh`: this script began the namespace; `at`: the expiry
-- of the record(s) just written (nil: none); `ttl`: their ttl, ms; `dropped`: the script
-- removed records first (its lru may have been emptied and made again). Called last.
local function outlive(x, fresh, at, ttl, dropped)
  if at then
    if not fresh and not x then return end
    local keep = tonumber(x)
    if keep and at <= keep then
      -- Keys this script may have made anew (a ttl index or lru emptied, then written).
      if redis.call('PTTL', TTL) == -1 then redis.call('PEXPIREAT', TTL, keep) end
      if dropped and redis.call('PTTL', LRU) == -1 then redis.call('PEXPIREAT', LRU, keep) end
      return
    end
    keep = at + ttl
    redis.call('HSET', ST, 'x', keep)
    for _, k in ipairs({LRU, ST, LOG, TTL}) do redis.call('PEXPIREAT', k, keep) end
  elseif x then
    redis.call('HDEL', ST, 'x')
    for _, k in ipairs({LRU, ST, LOG, TTL}) do redis.call('PERSIST', k) end
  end
end
