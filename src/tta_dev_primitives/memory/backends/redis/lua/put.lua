--! keys: lru st log
--! base: keys
-- KEYS: lru, st, log, then the record key of each record written. ARGV: a header
-- "<max_size> <ttl_ms> <embedder>" (max_size 0 = unbounded, ttl_ms 0 = none, the embedder
-- of the vectors '<name>:<dimensions>', empty when no record carries one; "<max_size>"
-- alone without ttl and embedder), then one string
-- per record: "<created> <updated> <len of metadata> <len of vector> " followed by the
-- metadata JSON, the vector (raw float32) and the value JSON; a record with an index text
-- has "<len of vector>:<len of index text>" and the text between vector and value. Times are server ms, '-' for
-- the server clock (and over a live record its created time is kept). Few arguments: each
-- one costs the client more to send than the script pays to split it. The namespace's
-- base is its lru key without the suffix. Returns how many records were evicted. A
-- namespace keeps the embedder of its first vectors (ST field sp) and refuses another one
-- ('EMBEDDER <stored>' error) until it is emptied.
--
-- Reads come first (see _drop), each also checking its key's type: the record hashes (their
-- r field: created time, expiry, vector), the recency index, the ttl index when it is used. The first writes are
-- the counters of ST and the log entry, so a key of another type there (another client's
-- doing) fails the write before any record changed.
local call = redis.call
local base = string.sub(KEYS[1], 1, -4)
local LRU, ST, LOG = KEYS[1], KEYS[2], KEYS[3]
local TTL = base .. 'ttl'
local REC = base .. 'h:'
--! include: _foreign
--! include: _seq
--! include: _log
--! include: _write

-- Write record i (its ARGV string) under `rk` with write sequence `seq`; `old` is the r field
-- of the record there (nil: none), whose created time a rewrite keeps. `now_s`, `at` below.
local now_s, at
local function store(i, rk, seq, old)
  local rec = ARGV[1 + i]
  local value, meta, vec, c, u
  local text = ''
  if string.sub(rec, 1, 8) == '- - 0 0 ' then
    value, meta, vec, c, u = string.sub(rec, 9), '', '', '-', '-'
  else
    local ml, vl, tl, from
    c, u, ml, vl, tl, from = string.match(rec, '^(%S+) (%S+) (%d+) (%d+):?(%d*) ()')
    local m_end = from + tonumber(ml)
    local v_end = m_end + tonumber(vl)
    local t_end = v_end + (tl == '' and 0 or tonumber(tl))
    value, meta, vec = string.sub(rec, t_end), string.sub(rec, from, m_end - 1),
      string.sub(rec, m_end, v_end - 1)
    text = string.sub(rec, v_end, t_end - 1)
  end
  local made, flags = parsed(old)
  if c == '-' then c = made or now_s end
  if u == '-' then u = now_s end
  write(rk, seq, value, meta, vec, c, u, at, flags, text)
end

local max, ttl, space = ARGV[1], 0, ''
if string.find(max, ' ', 1, true) then
  max, ttl, space = string.match(max, '^(%d+) (%d+) (.*)$')
  ttl = tonumber(ttl)
end
max = tonumber(max)
local count = #ARGV - 1
local first = call('HGET', KEYS[4], 'r')
-- A rewrite without expiry over a record with one removes its ttl entry: read the ttl
-- index first (see _drop).
local function expiring(r)
  if ttl == 0 and r and not string.find(r, '^%S+ %S+ %- ') then call('EXISTS', TTL) end
end
if ttl > 0 then
  local bad = foreign({TTL}, {'zset'})
  if bad then return redis.error_reply(bad) end
else
  expiring(first)
end
local space_new = false
if space ~= '' then
  local stored = call('HGET', ST, 'sp')
  if stored and stored ~= space then return redis.error_reply('EMBEDDER ' .. stored) end
  space_new = not stored
end
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
now_s = t[1] .. string.sub(string.rep('0', 6 - #t[2]) .. t[2], 1, 3)  -- no sprintf
if ttl > 0 then at = now + ttl end

-- One record with nothing to evict (a rewrite, no bound or room left) and no sweep due: the
-- common case, written before the batch's tables and helpers exist (each costs every run).
-- A record hash there is in the recency index too; the index may also hold the stale entry
-- of a record Redis expired (then the key adds nothing).
local card, held
if count == 1 and now % 8 ~= 0 then
  local key = string.sub(KEYS[4], #REC + 1)
  if max > 0 and not first then
    card = call('ZCARD', LRU)
    if card >= max then held = call('ZSCORE', LRU, key) end
  end
  if max == 0 or first or card < max or held then
    local rk = KEYS[4]
    local st = call('HMGET', ST, 'c', 'x')
    if st[2] and not at then call('EXISTS', TTL) end  -- outlive persists it: read it first
    local seq = versions(st[1], clock_floor(t), 1)
    call('HSET', ST, 'c', seq)
    log({'p', key}, seq)
    if space_new then call('HSET', ST, 'sp', space) end
    store(1, rk, seq, first)
    call('ZADD', LRU, seq, key)
    if at then call('ZADD', TTL, at, key) end
    outlive(st[2], not st[1], at, ttl)
    return 0
  end
end
--! include: _drop

local keys, olds = {}, {first}
for i = 1, count do
  keys[i] = string.sub(KEYS[3 + i], #REC + 1)
  if i > 1 then
    olds[i] = call('HGET', KEYS[3 + i], 'r')
    expiring(olds[i])
  end
end

-- The batch's keys, each once, in the order of their last write (their new recency order).
local last_at, order = {}, keys
if count > 1 then
  order = {}
  for i = 1, count do last_at[keys[i]] = i end
  for i = 1, count do
    if last_at[keys[i]] == i then order[#order + 1] = keys[i] end
  end
else
  last_at[keys[1]] = 1
end
local expired, settle, drop  -- from drops(), when there is something to evict or sweep
local gone, again, victims, extra = {}, {}, {}, 0
local purged, checked = false, nil
if max > 0 then
  -- The keys the batch adds. A record hash there is in the recency index too; the index
  -- may also hold the stale entry of a record Redis expired (then the key adds nothing).
  local added = 0
  if count == 1 then
    if not first and not held then
      if card == nil then held = call('ZSCORE', LRU, keys[1]) end
      if not held then added = 1 end
    end
  else
    local scores = zmscore(LRU, keys)
    local counted = {}
    for i = 1, count do
      if not scores[i] and not counted[keys[i]] then
        counted[keys[i]] = true
        added = added + 1
      end
    end
  end
  local n = added > 0 and (card or call('ZCARD', LRU)) + added or 0
  if n > max then
    -- Expired records go before live ones are evicted.
    purged = true
    expired, settle, drop = drops()
    local due
    due, again = expired(now)
    if #due > 0 then
      local held = zmscore(LRU, due)
      for i = 1, #due do
        if not last_at[due[i]] then
          gone[#gone + 1] = due[i]
          if held[i] then n = n - 1 end
        end
      end
    end
    if n > max then
      local skip = {}
      for i = 1, #gone do skip[gone[i]] = true end
      local cand = call('ZRANGE', LRU, 0, (n - max) + count + #gone - 1)
      for i = 1, #cand do
        if #victims >= n - max then break end
        if not last_at[cand[i]] and not skip[cand[i]] then victims[#victims + 1] = cand[i] end
      end
      for s = 1, #victims, 1000 do
        local recs = {}
        for i = s, math.min(s + 999, #victims) do recs[#recs + 1] = REC .. victims[i] end
        call('EXISTS', unpack(recs))
      end
      -- A batch larger than max_size: its own oldest records go too (not written at all).
      extra = n - #victims - max
      if extra < 0 then extra = 0 end
    end
  end
end
if not purged and now % 8 == 0 then
  -- A bounded sweep on the write path (about one write in 8, at most 64 due entries): the
  -- records Redis expired leave their recency and ttl entries behind, which no read may
  -- ever purge; this keeps them bounded by the live records.
  local due
  expired, settle, drop = drops()
  gone, again, due = expired(now, 64)
  if #due > 0 then
    purged, checked = true, due
    local kept = {}
    for i = 1, #gone do
      if not last_at[gone[i]] then kept[#kept + 1] = gone[i] end
    end
    gone = kept
  end
end

-- The change first: counters, then the log entry.
local st = call('HMGET', ST, 'c', 'x')
if st[2] and not at then call('EXISTS', TTL) end  -- outlive persists it: read it first
local last = versions(st[1], clock_floor(t), count)
call('HSET', ST, 'c', last)
local fields = {}
local dropped = {}
for i = 1, #gone do dropped[#dropped + 1] = gone[i] end
for i = 1, #victims do dropped[#dropped + 1] = victims[i] end
for i = 1, extra do dropped[#dropped + 1] = order[i] end
for i = 1, #dropped do
  fields[#fields + 1] = 'd'
  fields[#fields + 1] = dropped[i]
end
for i = extra + 1, #order do
  fields[#fields + 1] = 'p'
  fields[#fields + 1] = order[i]
end
log(fields, last)
if space_new then call('HSET', ST, 'sp', space) end
if purged then settle(now, again, checked) end
if #dropped > 0 then drop(dropped, {}) end
local evicting = {}
for i = 1, extra do evicting[order[i]] = true end
local z, t = {}, {}
for i = 1, count do
  local key = keys[i]
  if last_at[key] == i and not evicting[key] then
    store(i, KEYS[3 + i], last - count + i, olds[i])
    z[#z + 1] = last - count + i
    z[#z + 1] = key
    if at then
      t[#t + 1] = at
      t[#t + 1] = key
    end
  end
end
if #z > 0 then call('ZADD', LRU, unpack(z)) end
if #t > 0 then call('ZADD', TTL, unpack(t)) end
if #z > 0 then outlive(st[2], not st[1], at, ttl, #dropped > 0) end
return #victims + extra
