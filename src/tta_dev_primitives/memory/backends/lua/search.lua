--! keys: lru
--! include: _names
--! include: _drop
--! include: _index
-- ARGV: base, limit, prune ('1': return only the records that can reach the top `limit`),
--   records ('1': return each candidate's record), all_hold ('1': every record with a word
--   containing `longest` holds the whole query), horizon ('' on the first call),
--   apply_only ('1': index the groups and return {'applied'}), k1, b, bonus, text, longest,
--   m, term_1..term_m, then groups of (key, seq, length, "term tf ...", leaves) to index.
-- Returns {'index', horizon, key, seq, payload, ...} while records written before the search
-- began (up to write counter `horizon`) wait to be indexed (the client tokenizes them and
-- calls again with the groups and the horizon), else
-- {'ok', n, total length, "df ...", rows, keys, records} where each row is
-- "<key bytes> <seq> <length> <holds 0|1> <record bytes or -1> <tf_1> ... <tf_m>".
local limit = tonumber(ARGV[2])
local prune = ARGV[3] == '1'
local want_records = ARGV[4] == '1'
local all_hold = ARGV[5] == '1'
local horizon = ARGV[6]
if horizon == '' then horizon = redis.call('HGET', ST, 'c') or '0' end
local apply_only = ARGV[7] == '1'
local K1, B, BONUS = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local text, longest = ARGV[11], ARGV[12]
local m = tonumber(ARGV[13])
local terms = {}
for i = 1, m do terms[i] = ARGV[13 + i] end

purge()

-- Apply what the client tokenized, unless the record changed since (then it is pending
-- again, under its new write number).
for g = 14 + m, #ARGV, 5 do
  local key, seq = ARGV[g], ARGV[g + 1]
  local head = redis.call('GETRANGE', REC .. key, 0, 24)
  local now_seq = seq_of(head)
  if now_seq == nil then
    unindex(key)
    redis.call('ZREM', PENDING, key)
  elseif now_seq == seq then
    local doc = redis.call('HGET', DOC, key)
    if not (doc and string.match(doc, '^(%d+) ') == seq) then -- else a concurrent search did
      unindex(key)
      index(key, seq, ARGV[g + 2], ARGV[g + 3], ARGV[g + 4])
    end
    redis.call('ZREM', PENDING, key)
  end
end

if apply_only then return {'applied'} end

-- Pending records written before the search began, oldest first: unindex the gone ones
-- here; hand the live ones to the client to tokenize.
-- A batch is at most 200 records and (beyond its first record) 4 MB of values.
local live, bytes = {}, 0
while true do
  local batch = redis.call('ZRANGEBYSCORE', PENDING, '-inf', horizon, 'LIMIT', 0, 200)
  if #batch == 0 then break end
  for i = 1, #batch do
    local key = batch[i]
    local rec = redis.call('GET', REC .. key)
    local s, ml, vl, at
    if rec then s, ml, vl, at = string.match(rec, '^(%d+):(%d+):(%d+):()') end
    if s then
      if bytes > 4000000 then break end
      local payload = string.sub(rec, at + tonumber(ml) + tonumber(vl))
      bytes = bytes + #payload
      live[#live + 1] = key
      live[#live + 1] = s
      live[#live + 1] = payload
    else
      unindex(key)
      redis.call('ZREM', PENDING, key)
    end
  end
  if #live > 0 then
    local out = {'index', horizon}
    for i = 1, #live do out[i + 2] = live[i] end
    return out
  end
end

local N = tonumber(redis.call('HGET', ST, 'n') or '0')
local total = tonumber(redis.call('HGET', ST, 'len') or '0')
local avgdl = 1.0
if N > 0 and total > 0 then avgdl = total / N end
local KP1 = K1 + 1.0
local dfs, idfs = {}, {}
for i = 1, m do
  local df = redis.call('HLEN', POST .. terms[i])
  dfs[i] = df
  idfs[i] = math.log(1.0 + (N - df + 0.5) / (df + 0.5))
end

-- Records with a string leaf holding the whole query. Each has, for each query word, a word
-- containing it, so only the records with a word containing the longest one are checked.
local held = {}
local subs = {}
if m == 0 then
  subs = redis.call('HKEYS', LEAVES)
else
  local found
  local ngrams = #longest - 2
  if ngrams >= 1 then
    local sets, step = {}, math.max(1, math.floor(ngrams / 16))
    for i = 1, ngrams, step do sets[#sets + 1] = GRAM .. string.sub(longest, i, i + 2) end
    found = redis.call('SINTER', unpack(sets))
    local long = redis.call('SMEMBERS', LONG)
    for i = 1, #long do found[#found + 1] = long[i] end
  else
    found = redis.call('SMEMBERS', VOCAB)
  end
  local seen = {}
  for i = 1, #found do
    local term = found[i]
    if string.find(term, longest, 1, true) then
      local keys = redis.call('HKEYS', POST .. term)
      for j = 1, #keys do
        local key = keys[j]
        if not seen[key] then
          seen[key] = true
          subs[#subs + 1] = key
        end
      end
    end
  end
end

local function holds(blob, needle)
  local i, size, want = 1, #blob, #needle
  while i <= size do
    local colon = string.find(blob, ':', i, true)
    local n = tonumber(string.sub(blob, i, colon - 1))
    local first = colon + 1
    if n >= want and string.find(string.sub(blob, first, first + n - 1), needle, 1, true) then
      return true
    end
    i = first + n
  end
  return false
end

local acc, nacc = {}, 0 -- key -> {score, length, tf_1, ..., tf_m} (nil tf: absent)
if all_hold and m > 0 then
  for i = 1, #subs do held[subs[i]] = true end
else
  for s = 1, #subs, 1000 do
    local chunk = {unpack(subs, s, math.min(s + 999, #subs))}
    local blobs = redis.call('HMGET', LEAVES, unpack(chunk))
    for i = 1, #chunk do
      if blobs[i] and holds(blobs[i], text) then held[chunk[i]] = true end
    end
  end
end
for key in pairs(held) do
  acc[key] = {BONUS, 0}
  nacc = nacc + 1
end

-- BM25 term at a time, rarest term first. Once `limit` records have scores and no record
-- outside them can reach the limit-th best any more (the bound of the remaining terms is
-- below it), only those that still can are followed. Scores here only choose who to
-- return; the client rescores exactly (with a margin for the different float rounding).
local SLACK = 1.0 - 1e-9
-- The limit-th best score so far (a min-heap of the best `limit`), or nil if fewer.
local function kth()
  local h, n = {}, 0
  for _, c in pairs(acc) do
    local v = c[1]
    if n < limit then
      n = n + 1
      h[n] = v
      local i = n
      while i > 1 do
        local p = math.floor(i / 2)
        if h[p] <= h[i] then break end
        h[p], h[i] = h[i], h[p]
        i = p
      end
    elseif v > h[1] then
      h[1] = v
      local i = 1
      while true do
        local l, m = 2 * i, i
        if l <= n and h[l] < h[m] then m = l end
        if l + 1 <= n and h[l + 1] < h[m] then m = l + 1 end
        if m == i then break end
        h[m], h[i] = h[i], h[m]
        i = m
      end
    end
  end
  if n < limit then return nil end
  return h[1]
end
local order = {}
local bound = 0.0
for i = 1, m do
  order[i] = i
  bound = bound + idfs[i] * KP1
end
table.sort(order, function(a, b) return idfs[a] > idfs[b] end)
local function add(c, i, v, idf)
  local tf = v % SHIFT
  local len = (v - tf) / SHIFT
  c[2] = len
  c[2 + i] = tf
  c[1] = c[1] + idf * tf * KP1 / (tf + K1 * (1.0 - B + B * len / avgdl))
end
for _, i in ipairs(order) do
  local post = POST .. terms[i]
  local idf = idfs[i]
  local floor = nil
  if prune and nacc >= limit then floor = kth() * SLACK end
  if floor == nil or bound >= floor then
    local h = redis.call('HGETALL', post)
    for j = 1, #h, 2 do
      local key = h[j]
      local c = acc[key]
      if not c then
        c = {0.0, 0}
        acc[key] = c
        nacc = nacc + 1
      end
      add(c, i, tonumber(h[j + 1]), idf)
    end
  else
    local keep = {}
    for key, c in pairs(acc) do
      if c[1] + bound >= floor then
        keep[#keep + 1] = key
      else
        acc[key] = nil
        nacc = nacc - 1
      end
    end
    for s = 1, #keep, 1000 do
      local chunk = {unpack(keep, s, math.min(s + 999, #keep))}
      local vals = redis.call('HMGET', post, unpack(chunk))
      for j = 1, #chunk do
        if vals[j] then add(acc[chunk[j]], i, tonumber(vals[j]), idf) end
      end
    end
  end
  bound = bound - idf * KP1
end

local cut = nil
if prune and nacc > limit then cut = kth() * SLACK end
local chosen = {}
for key, c in pairs(acc) do
  if cut == nil or c[1] >= cut then chosen[#chosen + 1] = key end
end
local rows, keys, recs = {}, {}, {}
for s = 1, #chosen, 1000 do
  local chunk = {unpack(chosen, s, math.min(s + 999, #chosen))}
  local docs = redis.call('HMGET', DOC, unpack(chunk))
  for j = 1, #chunk do
    local key, doc = chunk[j], docs[j]
    if doc then
      local c = acc[key]
      local rlen = -1
      if want_records then
        local rec = redis.call('GET', REC .. key)
        if rec then
          recs[#recs + 1] = rec
          rlen = #rec
        end
      end
      local row = {#key, string.match(doc, '^(%d+) '), c[2], held[key] and 1 or 0, rlen}
      for i = 1, m do row[5 + i] = c[2 + i] or 0 end
      rows[#rows + 1] = table.concat(row, ' ')
      keys[#keys + 1] = key
    end
  end
end
return {'ok', N, total, table.concat(dfs, ' '), table.concat(rows, ' '), table.concat(keys),
  table.concat(recs)}
