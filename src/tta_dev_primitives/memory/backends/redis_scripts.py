"""The Lua scripts behind :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend`.

Each script is one atomic step on one namespace. Every key a script touches starts with the
namespace's base ``prefix:{escaped namespace}:``, so all of them share one hash slot (Redis
Cluster routes the call by ``KEYS[1]``, the namespace's LRU index). ``ARGV[1]`` is the base.

Keys of one namespace (``B`` = the base):

* ``B r:<key>``: the record, one string ``<seq>:<metadata bytes>:<vector bytes>:`` followed by
  the metadata JSON, the base64 vector and the payload JSON. The only key holding the value
  and the only one with a native expiry (``SET ... PXAT``).
* ``B lru``: zset key -> recency (``get`` and ``put`` take the next value of counter ``c``).
* ``B ttl``: zset key -> absolute expiry, server milliseconds (the ``PXAT`` of the record);
  an entry may be stale (the record since rewritten without expiry, deleted or evicted), so
  the purge checks the record's own ``PEXPIRETIME`` before dropping it.
* ``B st``: hash of counters: ``c`` (write order and recency, never reset), ``n`` and ``len``
  (number and total length of the indexed records, for BM25).
* ``B q``: zset of the keys whose search index entry may be stale, scored by the write
  number of the new version (0 for a record deleted, evicted or expired since it was
  indexed).
* ``B d``: hash key -> ``"<seq> <length>"`` of the indexed version.
* ``B t``: hash key -> ``"<term> <tf> <term> <tf> ..."``, what unindexing needs; it never
  expires, so a record whose value key expired natively is still unindexed exactly.
* ``B l``: hash key -> the lower-cased string leaves, each as ``<bytes>:<text>``, for the
  whole-query substring rule.
* ``B p:<term>``: hash key -> ``tf + length * 2^24`` (the posting list; its length is the
  term's document frequency, and each entry carries what BM25 needs of the record).
* ``B voc``: set of every indexed term; ``B g:<3 bytes>``: set of the terms (of at most 64
  bytes) holding that byte trigram, to find the terms containing a query word without
  scanning the vocabulary; ``B long``: the longer terms, which every search scans.

Writes are O(1) commands (the record, its recency, its expiry, the ``q`` set): indexing is
deferred to the next search, which hands the pending records to the client to tokenize (the
same :func:`~tta_dev_primitives.memory.search.make_document` every backend uses) and applies
the result before it ranks.

Expiry: a record lives while the server clock is at most its expiry (the ``PXAT`` rule). The
scripts that list, count, search or evict first purge the records whose expiry has passed,
so an expired record is never listed, counted or found, even before Redis reclaims it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["CLEAR", "COMPACT", "GET", "LIST", "PUT", "REMOVE", "SEARCH"]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1 (run with ``EVALSHA``, loaded on ``NOSCRIPT``)."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


_NAMES = r"""
local base = ARGV[1]
local LRU = KEYS[1]
local TTL = base .. 'ttl'
local ST = base .. 'st'
local PENDING = base .. 'q'
local REC = base .. 'r:'
"""

# Check the namespace's own keys before writing anything, so that a script refused part-way
# (another client overwrote one of them with another type) never leaves a partial record.
_FOREIGN = r"""
local function foreign(keys, want)
  for i = 1, #keys do
    local t = redis.call('TYPE', keys[i])['ok']
    if t ~= 'none' and t ~= want[i] then
      return 'WRONGTYPE ' .. keys[i] .. ' holds a ' .. t .. ', not the ' .. want[i] ..
        ' this library keeps there (overwritten by another client?); nothing was written'
    end
  end
  return nil
end
"""

# Drop records (value, recency) and queue them for unindexing; purge the expired.
_DROP = r"""
local function drop(keys)
  for s = 1, #keys, 1000 do
    local chunk = {unpack(keys, s, math.min(s + 999, #keys))}
    local recs = {}
    for i = 1, #chunk do recs[i] = REC .. chunk[i] end
    redis.call('DEL', unpack(recs))
    redis.call('ZREM', LRU, unpack(chunk))
    local z = {'ZADD', PENDING}
    for i = 1, #chunk do
      z[2 * i + 1] = 0
      z[2 * i + 2] = chunk[i]
    end
    redis.call(unpack(z))
  end
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drop the records whose expiry has passed. The ttl index may hold stale entries (a record
-- rewritten without expiry, deleted or evicted: writes do not pay to remove them), so each
-- due entry is checked against the record's own expiry.
local function purge()
  if redis.call('EXISTS', TTL) == 0 then return end
  local now = clock()
  local upto = string.format('(%d', now)
  local due = redis.call('ZRANGEBYSCORE', TTL, '-inf', upto)
  if #due == 0 then return end
  local gone = {}
  for i = 1, #due do
    local at = redis.call('PEXPIRETIME', REC .. due[i])
    if at == -2 or (at >= 0 and at < now) then
      gone[#gone + 1] = due[i]
    elseif at >= 0 then
      redis.call('ZADD', TTL, at, due[i])
    end
  end
  redis.call('ZREMRANGEBYSCORE', TTL, '-inf', upto)
  if #gone > 0 then drop(gone) end
end
"""

_INDEX = r"""
local DOC = base .. 'd'
local TERMS = base .. 't'
local LEAVES = base .. 'l'
local VOCAB = base .. 'voc'
local LONG = base .. 'long'
local POST = base .. 'p:'
local GRAM = base .. 'g:'
local SHIFT = 16777216

local function words(s)
  local out, n, i, len = {}, 0, 1, #s
  while i <= len do
    local j = string.find(s, ' ', i, true) or (len + 1)
    n = n + 1
    out[n] = string.sub(s, i, j - 1)
    i = j + 1
  end
  return out
end

-- Terms longer than 64 bytes are rare and would cost a set write per byte: they go to one
-- set that every search scans instead of the trigram sets.
local function grams(term, cmd)
  if #term > 64 then
    redis.call(cmd, LONG, term)
    return
  end
  for i = 1, #term - 2 do
    redis.call(cmd, GRAM .. string.sub(term, i, i + 2), term)
  end
end

local function unindex(key)
  local doc = redis.call('HGET', DOC, key)
  if not doc then return end
  local len = tonumber(string.sub(doc, string.find(doc, ' ', 1, true) + 1))
  local terms = words(redis.call('HGET', TERMS, key) or '')
  for i = 1, #terms, 2 do
    local term = terms[i]
    local post = POST .. term
    redis.call('HDEL', post, key)
    if redis.call('EXISTS', post) == 0 then
      redis.call('SREM', VOCAB, term)
      grams(term, 'SREM')
    end
  end
  redis.call('HDEL', DOC, key)
  redis.call('HDEL', TERMS, key)
  redis.call('HDEL', LEAVES, key)
  redis.call('HINCRBY', ST, 'n', -1)
  if len > 0 then redis.call('HINCRBY', ST, 'len', -len) end
end

local function index(key, seq, len, terms, leaves)
  redis.call('HSET', DOC, key, seq .. ' ' .. len)
  redis.call('HSET', TERMS, key, terms)
  if leaves ~= '' then redis.call('HSET', LEAVES, key, leaves) end
  redis.call('HINCRBY', ST, 'n', 1)
  local n = tonumber(len)
  if n > 0 then redis.call('HINCRBY', ST, 'len', n) end
  local hi = n * SHIFT
  local t = words(terms)
  for i = 1, #t, 2 do
    local term = t[i]
    redis.call('HSET', POST .. term, key, string.format('%d', hi + tonumber(t[i + 1])))
    if redis.call('SADD', VOCAB, term) == 1 then grams(term, 'SADD') end
  end
end

local function seq_of(rec)
  return string.match(rec, '^(%d+):')
end
"""

PUT = Script(
    "put",
    _NAMES
    + _FOREIGN
    + _DROP
    + r"""
-- ARGV: base, max_size (0 = unbounded), ttl_ms (0 = none), then key, body pairs (body: the
-- record without its leading "<seq>:"). Returns how many records were evicted.
local bad = foreign({LRU, TTL, ST, PENDING}, {'zset', 'zset', 'hash', 'zset'})
if bad then return redis.error_reply(bad) end
local ttl = tonumber(ARGV[3])
local count = (#ARGV - 3) / 2
local last = redis.call('HINCRBY', ST, 'c', count)
local at
if ttl > 0 then at = string.format('%d', clock() + ttl) end
local z, keys = {}, {}
for i = 1, count do
  local key = ARGV[2 + 2 * i]
  local seq = last - count + i
  local rec = string.format('%d:', seq) .. ARGV[3 + 2 * i]
  if at then
    redis.call('SET', REC .. key, rec, 'PXAT', at)
  else
    redis.call('SET', REC .. key, rec)
  end
  z[2 * i - 1] = seq
  z[2 * i] = key
  keys[i] = key
end
local added = redis.call('ZADD', LRU, unpack(z))
if at then
  local t = {'ZADD', TTL}
  for i = 1, count do
    t[2 * i + 1] = at
    t[2 * i + 2] = keys[i]
  end
  redis.call(unpack(t))
end
redis.call('ZADD', PENDING, unpack(z))
local max = tonumber(ARGV[2])
if max > 0 and added > 0 then
  local n = redis.call('ZCARD', LRU)
  if n > max then
    -- Expired records go before live ones are evicted.
    purge()
    n = redis.call('ZCARD', LRU)
    if n > max then
      local victims = redis.call('ZRANGE', LRU, 0, n - max - 1)
      drop(victims)
      return #victims
    end
  end
end
return 0
""",
)

GET = Script(
    "get",
    r"""
-- KEYS[1]: the LRU index. ARGV: base, touch ('1' refreshes recency), key...
-- One key: its record or nil. Several: a list of records (nil where missing).
-- The recency bump is best-effort (pcall): at maxmemory with noeviction Redis refuses the
-- write, and the read must still answer.
local REC = ARGV[1] .. 'r:'
if #ARGV == 3 then
  local rec = redis.call('GET', REC .. ARGV[3])
  if rec and ARGV[2] == '1' then
    local c = redis.pcall('HINCRBY', ARGV[1] .. 'st', 'c', 1)
    if type(c) == 'number' then redis.pcall('ZADD', KEYS[1], 'XX', c, ARGV[3]) end
  end
  return rec
end
local out, hits = {}, {}
for i = 3, #ARGV do
  local rec = redis.call('GET', REC .. ARGV[i])
  out[i - 2] = rec
  if rec then hits[#hits + 1] = ARGV[i] end
end
local last = 0
if ARGV[2] == '1' and #hits > 0 then last = redis.pcall('HINCRBY', ARGV[1] .. 'st', 'c', #hits) end
if type(last) == 'number' and last > 0 then
  local z = {'ZADD', KEYS[1], 'XX'}
  for i = 1, #hits do
    z[2 * i + 2] = last - #hits + i
    z[2 * i + 3] = hits[i]
  end
  redis.pcall(unpack(z))
end
return out
""",
)

REMOVE = Script(
    "remove",
    _NAMES
    + _FOREIGN
    + r"""
-- ARGV: base, key. Returns 1 if a live record was deleted.
local bad = foreign({LRU, PENDING}, {'zset', 'zset'})
if bad then return redis.error_reply(bad) end
local key = ARGV[2]
local live = redis.call('DEL', REC .. key)
if redis.call('ZREM', LRU, key) == 1 then redis.call('ZADD', PENDING, 0, key) end
return live
""",
)

LIST = Script(
    "list",
    _NAMES
    + _DROP
    + r"""
-- ARGV: base, 'size' or 'keys'. The live count, or the live keys least recently used first.
purge()
if ARGV[2] == 'size' then return redis.call('ZCARD', LRU) end
return redis.call('ZRANGE', LRU, 0, -1)
""",
)

CLEAR = Script(
    "clear",
    _NAMES
    + _DROP
    + _INDEX
    + r"""
-- ARGV: base. Deletes every key of the namespace but the write counter; returns how many
-- live records there were.
purge()
local keys = redis.call('ZRANGE', LRU, 0, -1)
for s = 1, #keys, 1000 do
  local recs = {}
  for i = s, math.min(s + 999, #keys) do recs[#recs + 1] = REC .. keys[i] end
  redis.call('UNLINK', unpack(recs))
end
local vocab = redis.call('SMEMBERS', VOCAB)
for i = 1, #vocab do
  local term = vocab[i]
  redis.call('UNLINK', POST .. term)
  if #term <= 64 then
    for j = 1, #term - 2 do redis.call('UNLINK', GRAM .. string.sub(term, j, j + 2)) end
  end
end
redis.call('UNLINK', LRU, TTL, PENDING, DOC, TERMS, LEAVES, VOCAB, LONG)
redis.call('HDEL', ST, 'n', 'len')
return #keys
""",
)

SEARCH = Script(
    "search",
    _NAMES
    + _DROP
    + _INDEX
    + r"""
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
""",
)

COMPACT = Script(
    "compact",
    r"""
-- Replace records at once, if each is still the version the client read (compaction).
-- KEYS: lru, ttl, st, q, then the record key (base .. 'r:' .. key) of each of the n records
-- read, then the record key of the new record (the summary), if any.
-- ARGV: base, n, then per read record: its seq, an action ('d' delete, 'w' rewrite keeping
-- its expiry, '-' check only) and the body of a rewrite ('' otherwise); then the new
-- record's ttl_ms (0 = none) and body (its record without the leading "<seq>:").
-- Returns the keys whose record changed since it was read (then nothing was changed), or
-- an empty list once applied.
local LRU, TTL, ST, PENDING = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local skip = #(ARGV[1] .. 'r:') + 1
local n = tonumber(ARGV[2])
local changed = {}
for i = 1, n do
  local seq = string.match(redis.call('GETRANGE', KEYS[4 + i], 0, 24), '^(%d+):')
  if seq ~= ARGV[3 * i] then changed[#changed + 1] = string.sub(KEYS[4 + i], skip) end
end
if #changed > 0 then return changed end
local insert = #KEYS > 4 + n
local writes = insert and 1 or 0
for i = 1, n do
  if ARGV[3 * i + 1] == 'w' then writes = writes + 1 end
end
local seq = 0
if writes > 0 then seq = redis.call('HINCRBY', ST, 'c', writes) - writes end
for i = 1, n do
  local rkey = KEYS[4 + i]
  local key = string.sub(rkey, skip)
  local action = ARGV[3 * i + 1]
  if action == 'd' then
    redis.call('DEL', rkey)
    redis.call('ZREM', LRU, key)
    redis.call('ZADD', PENDING, 0, key)
  elseif action == 'w' then
    seq = seq + 1
    redis.call('SET', rkey, string.format('%d:', seq) .. ARGV[3 * i + 2], 'KEEPTTL')
    redis.call('ZADD', LRU, seq, key)
    redis.call('ZADD', PENDING, seq, key)
  end
end
if insert then
  local rkey = KEYS[5 + n]
  local key = string.sub(rkey, skip)
  seq = seq + 1
  local ttl = tonumber(ARGV[3 * n + 3])
  local rec = string.format('%d:', seq) .. ARGV[3 * n + 4]
  if ttl > 0 then
    local t = redis.call('TIME')
    local at = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl)
    redis.call('SET', rkey, rec, 'PXAT', at)
    redis.call('ZADD', TTL, at, key)
  else
    redis.call('SET', rkey, rec)
  end
  redis.call('ZADD', LRU, seq, key)
  redis.call('ZADD', PENDING, seq, key)
end
return {}
""",
)
