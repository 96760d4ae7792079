--! keys: lru st log
-- update.lua as one versioned write (HistoryBackend.update_versioned): when the record is
-- still the version the client read, it becomes an earlier version (see _archive.lua) in the
-- same atomic step as the update.
--! include: _archive
local hkeep, hcap = history_args()
local FROZEN_TIME = redis.call('TIME')
--! frozen time
do
  local rk = KEYS[4]
  if redis.call('HGET', rk, 's') == ARGV[3] then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    archive(ARGV[1], ARGV[2], now, hkeep, hcap)
  end
end
--! include: update
