--! keys: lru st log
--! base: keys
-- put.lua as one versioned write (HistoryBackend.put_versioned): first the record under the
-- key written and the records under the superseded keys become earlier versions (see
-- _archive.lua), and the superseded records leave the live records (logged as 'd'); then
-- put.lua runs on the rest of ARGV, in the same atomic step.
--! include: _archive
local hkeep, hcap, hsup = history_args()
local FROZEN_TIME = redis.call('TIME')
--! frozen time
do
  local base = string.sub(KEYS[1], 1, -4)
  local LRU, ST, LOG = KEYS[1], KEYS[2], KEYS[3]
  local TTL = base .. 'ttl'
--! include: _seq
--! include: _log
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local key = string.sub(KEYS[4], #base + 3)
  for i = 1, #hsup do redis.call('EXISTS', base .. 'h:' .. hsup[i]) end
  redis.call('EXISTS', TTL)
  archive(base, key, now, hkeep, hcap)
  local gone = {}
  for i = 1, #hsup do
    if hsup[i] ~= key and archive(base, hsup[i], now, hkeep, hcap) then
      redis.call('DEL', base .. 'h:' .. hsup[i])
      redis.call('ZREM', LRU, hsup[i])
      redis.call('ZREM', TTL, hsup[i])
      gone[#gone + 1] = 'd'
      gone[#gone + 1] = hsup[i]
    end
  end
  log(gone)
end
--! include: put
