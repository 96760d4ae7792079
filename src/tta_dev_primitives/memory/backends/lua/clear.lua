--! keys: lru
--! include: _names
--! include: _drop
--! include: _index
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
