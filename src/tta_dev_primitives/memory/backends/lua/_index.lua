-- Shared by the scripts that maintain the server-side search index.
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
