"""The Lua scripts behind :class:`~tta_dev_primitives.memory.backends.redis.RedisBackend`.

Each script is one atomic step on one namespace. Every key a script touches starts with the
namespace's base ``prefix:{escaped namespace}:``, so all of them share one hash slot (Redis
Cluster routes the call by ``KEYS[1]``, the namespace's LRU index). ``ARGV[1]`` is the base.

Keys of one namespace (``B`` = the base):

* ``B r:<key>``: hash ``{p: payload JSON, m: metadata JSON, s: write sequence}``; the only
  key holding the value, and the only one with a native expiry (``PEXPIREAT``).
* ``B lru``: zset key -> recency tick (``get`` and ``put`` take the next tick).
* ``B ttl``: zset key -> absolute expiry in server milliseconds.
* ``B st``: hash of counters: ``seq`` (write order), ``tick`` (recency), ``len`` (sum of the
  document lengths of the live records, for BM25's average length).
* ``B d``: hash key -> ``"<seq> <length>"``, what ranking needs of every candidate.
* ``B t``: hash key -> ``"<term> <tf> <term> <tf> ..."``, what index cleanup needs. It never
  expires, so a record whose value key expired natively can still be unindexed exactly.
* ``B l``: hash key -> the lower-cased string leaves, each as ``<bytes>:<text>``, for the
  whole-query substring rule.
* ``B v``: hash key -> base64 of the unit vector (little-endian float64), when there is one.
* ``B p:<term>``: hash key -> term frequency (the posting list; its length is the term's
  document frequency).
* ``B voc``: set of every indexed term; ``B g:<3 bytes>``: set of the terms (of at most 64
  bytes) holding that byte trigram, to find the terms containing a query word without
  scanning the vocabulary; ``B long``: the longer terms, which every search scans.

Expiry: every script first purges the records whose ``ttl`` score is due (server clock, the
same clock ``PEXPIREAT`` uses), so an expired record is never listed, counted or found even
before Redis deletes its value key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["CLEAR", "GET", "KEYWORD", "LIST", "PUT", "REMOVE", "VECTORS"]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1 (run with ``EVALSHA``, loaded on ``NOSCRIPT``)."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


_PRELUDE = r"""
local base = ARGV[1]
local LRU = KEYS[1]
local TTL = base .. 'ttl'
local ST = base .. 'st'
local DOC = base .. 'd'
local TERMS = base .. 't'
local LEAVES = base .. 'l'
local VEC = base .. 'v'
local VOCAB = base .. 'voc'
local REC = base .. 'r:'
local POST = base .. 'p:'
local GRAM = base .. 'g:'
local LONG = base .. 'long'

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

-- Forget `key` everywhere; true if it was indexed.
local function remove(key)
  redis.call('DEL', REC .. key)
  redis.call('ZREM', LRU, key)
  redis.call('ZREM', TTL, key)
  local doc = redis.call('HGET', DOC, key)
  if not doc then return false end
  local len = tonumber(string.sub(doc, string.find(doc, ' ', 1, true) + 1))
  if len > 0 then redis.call('HINCRBY', ST, 'len', -len) end
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
  redis.call('HDEL', VEC, key)
  return true
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function purge()
  local due = redis.call('ZRANGEBYSCORE', TTL, '-inf', string.format('%d', now))
  for i = 1, #due do remove(due[i]) end
end

purge()
"""

PUT = Script(
    "put",
    _PRELUDE
    + r"""
-- ARGV: base, max_size (0 = unbounded), key, payload, metadata ('' = none), ttl_ms (0 = none),
--       length, "term tf term tf ...", leaves, vector ('' = none). Returns how many evicted.
local key = ARGV[3]
remove(key)
local seq = redis.call('HINCRBY', ST, 'seq', 1)
local tick = redis.call('HINCRBY', ST, 'tick', 1)
local rec = REC .. key
if ARGV[5] == '' then
  redis.call('HSET', rec, 'p', ARGV[4], 's', seq)
else
  redis.call('HSET', rec, 'p', ARGV[4], 's', seq, 'm', ARGV[5])
end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local at = string.format('%d', now + ttl)
  redis.call('PEXPIREAT', rec, at)
  redis.call('ZADD', TTL, at, key)
end
redis.call('ZADD', LRU, tick, key)
local len = tonumber(ARGV[7])
redis.call('HSET', DOC, key, string.format('%d %d', seq, len))
redis.call('HSET', TERMS, key, ARGV[8])
if ARGV[9] ~= '' then redis.call('HSET', LEAVES, key, ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', VEC, key, ARGV[10]) end
if len > 0 then redis.call('HINCRBY', ST, 'len', len) end
local terms = words(ARGV[8])
for i = 1, #terms, 2 do
  local term = terms[i]
  redis.call('HSET', POST .. term, key, terms[i + 1])
  if redis.call('SADD', VOCAB, term) == 1 then grams(term, 'SADD') end
end
local max = tonumber(ARGV[2])
if max > 0 then
  local n = redis.call('ZCARD', LRU)
  if n > max then
    local victims = redis.call('ZRANGE', LRU, 0, n - max - 1)
    for i = 1, #victims do remove(victims[i]) end
    return #victims
  end
end
return 0
""",
)

GET = Script(
    "get",
    _PRELUDE
    + r"""
-- ARGV: base, touch ('1' refreshes recency), key... Returns payload, metadata, seq per key
-- (nil, nil, nil where there is no live record).
local touch = ARGV[2] == '1'
local out, n = {}, 0
for i = 3, #ARGV do
  local key = ARGV[i]
  local rec = redis.call('HMGET', REC .. key, 'p', 'm', 's')
  if rec[1] then
    if touch then
      redis.call('ZADD', LRU, 'XX', redis.call('HINCRBY', ST, 'tick', 1), key)
    end
  elseif redis.call('HEXISTS', DOC, key) == 1 then
    -- The value key went behind the index's back (maxmemory eviction): drop the rest.
    remove(key)
  end
  out[n + 1] = rec[1]
  out[n + 2] = rec[2]
  out[n + 3] = rec[3]
  n = n + 3
end
return out
""",
)

REMOVE = Script(
    "remove",
    _PRELUDE
    + r"""
-- ARGV: base, key. Returns 1 if a live record was deleted.
local key = ARGV[2]
local live = redis.call('EXISTS', REC .. key)
remove(key)
return live
""",
)

CLEAR = Script(
    "clear",
    _PRELUDE
    + r"""
-- ARGV: base. Deletes every key of the namespace; returns how many live records there were.
local keys = redis.call('ZRANGE', LRU, 0, -1)
for i = 1, #keys do redis.call('UNLINK', REC .. keys[i]) end
local vocab = redis.call('SMEMBERS', VOCAB)
for i = 1, #vocab do
  local term = vocab[i]
  redis.call('UNLINK', POST .. term)
  if #term <= 64 then
    for j = 1, #term - 2 do redis.call('UNLINK', GRAM .. string.sub(term, j, j + 2)) end
  end
end
redis.call('UNLINK', LRU, TTL, ST, DOC, TERMS, LEAVES, VEC, VOCAB, LONG)
return #keys
""",
)

LIST = Script(
    "list",
    _PRELUDE
    + r"""
-- ARGV: base, 'size' or 'keys'. The live count, or the live keys least recently used first.
if ARGV[2] == 'size' then return redis.call('ZCARD', LRU) end
return redis.call('ZRANGE', LRU, 0, -1)
""",
)

KEYWORD = Script(
    "keyword",
    _PRELUDE
    + r"""
-- ARGV: base, all_hold ('1': every record with a word containing `longest` holds the whole
--       query), text, longest (the longest query word, '' if none), with_metadata ('1'),
--       term...
-- Returns the corpus statistics and every record that can score above zero:
--   { live count, total length, "df df ...",
--     "<key bytes> <seq> <length> <holds 0|1> <tf>... [<metadata bytes or -1>] ...",
--     concatenated keys, concatenated metadata }
local text, longest = ARGV[3], ARGV[4]
local with_meta = ARGV[5] == '1'
local nterms = #ARGV - 5
local cand, order, dfs = {}, {}, {}
for i = 1, nterms do
  local hits = redis.call('HGETALL', POST .. ARGV[5 + i])
  dfs[i] = #hits / 2
  for j = 1, #hits, 2 do
    local key = hits[j]
    local tfs = cand[key]
    if not tfs then
      tfs = {}
      for t = 1, nterms do tfs[t] = '0' end
      cand[key] = tfs
      order[#order + 1] = key
    end
    tfs[i] = hits[j + 1]
  end
end

-- A record holding the whole query in one leaf has, for each query word, a word containing
-- it: the records with a word containing the longest query word are the only ones to check.
local subs
if nterms == 0 then
  subs = redis.call('ZRANGE', LRU, 0, -1)
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
  subs = {}
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

local held = {}
if ARGV[2] == '1' then
  for i = 1, #subs do held[subs[i]] = true end
else
  for start = 1, #subs, 1000 do
    local chunk = {}
    for i = start, math.min(start + 999, #subs) do chunk[#chunk + 1] = subs[i] end
    local blobs = redis.call('HMGET', LEAVES, unpack(chunk))
    for i = 1, #chunk do
      if blobs[i] and holds(blobs[i], text) then held[chunk[i]] = true end
    end
  end
end
for i = 1, #subs do
  local key = subs[i]
  if held[key] and not cand[key] then
    local tfs = {}
    for t = 1, nterms do tfs[t] = '0' end
    cand[key] = tfs
    order[#order + 1] = key
  end
end

local nums, keys, metas = {}, {}, {}
for start = 1, #order, 1000 do
  local chunk = {}
  for i = start, math.min(start + 999, #order) do chunk[#chunk + 1] = order[i] end
  local docs = redis.call('HMGET', DOC, unpack(chunk))
  for i = 1, #chunk do
    local key, doc = chunk[i], docs[i]
    if doc then
      keys[#keys + 1] = key
      local row = string.format('%d %s %d', #key, doc, held[key] and 1 or 0)
      if nterms > 0 then row = row .. ' ' .. table.concat(cand[key], ' ') end
      if with_meta then
        local meta = redis.call('HGET', REC .. key, 'm')
        if meta then
          metas[#metas + 1] = meta
          row = row .. ' ' .. #meta
        else
          row = row .. ' -1'
        end
      end
      nums[#nums + 1] = row
    end
  end
end
return {
  redis.call('ZCARD', LRU),
  tonumber(redis.call('HGET', ST, 'len') or '0'),
  table.concat(dfs, ' '),
  table.concat(nums, ' '),
  table.concat(keys),
  table.concat(metas),
}
""",
)

VECTORS = Script(
    "vectors",
    _PRELUDE
    + r"""
-- ARGV: base, with_metadata ('1'), key... Returns "<seq> <length>", vector, metadata per key
-- (nil where missing).
local with_meta = ARGV[2] == '1'
local keys = {}
for i = 3, #ARGV do keys[#keys + 1] = ARGV[i] end
local out = {}
if #keys == 0 then return out end
local docs = redis.call('HMGET', DOC, unpack(keys))
local vecs = redis.call('HMGET', VEC, unpack(keys))
for i = 1, #keys do
  local meta = false
  if with_meta and docs[i] then meta = redis.call('HGET', REC .. keys[i], 'm') end
  out[3 * i - 2] = docs[i]
  out[3 * i - 1] = vecs[i]
  out[3 * i] = meta
end
return out
""",
)
