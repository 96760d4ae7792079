--! keys: st log
-- Catch a search index up with the change log (see _log.lua).
-- KEYS: st, log. ARGV: base, the incarnation the index holds ('' none), the last entry it
-- applied (n), how many changed keys to return at most (whole entries are returned, so a
-- few more), the version of entry n as it read it ('' unknown).
-- Returns {incarnation, n reached, last n of the log, server ms, status, the namespace's
-- embedder ('<dimensions>:<name>', nil: none), the version of entry n reached ('' none),
-- then per changed key: key, s, v, r, e, t (its current record, see _write.lua; s nil when it
-- has none)}; status 'ok',
-- 'empty' (no such namespace: incarnation nil), 'reset' (another incarnation whose log is
-- whole: the index forgets every record, then applies the changes returned, from the
-- incarnation's first entry) or 'reload' (entries missed: the index must be rebuilt from a
-- full load: entry n lost, or not the one the reader applied, as after a restart from an
-- older snapshot). So a namespace emptied and refilled while a process loads it costs that
-- process no reload, and a namespace rolled back is never taken for the one it read.
local REC = ARGV[1] .. 'h:'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[1], 'i', 'g', 'sp')
local inc, g, sp = st[1], tonumber(st[2] or '0'), st[3]
if not inc then return {false, 0, 0, now, 'empty', false, ''} end
local status, last, seen_v = 'ok', tonumber(ARGV[3]), ARGV[5] or ''
if inc ~= ARGV[2] then status, last, seen_v = 'reset', 0, '' end
local reload = {inc, g, g, now, 'reload', sp, ''}
if g < last then return reload end
if seen_v ~= '' then
  -- The entry the reader applied last must still be there, as it read it.
  local id = string.format('%d-0', last)
  local at = redis.call('XRANGE', KEYS[2], id, id)
  if #at == 0 or at[1][2][1] ~= 'v' or at[1][2][2] ~= seen_v then return reload end
end
if g == last then return {inc, g, g, now, status, sp, seen_v} end
local first = string.format('%d-0', last + 1)
local entries = redis.call('XRANGE', KEYS[2], first, '+', 'COUNT', 256)
if #entries == 0 or entries[1][1] ~= first then return reload end
-- An upgraded namespace's first entry ('u', upgrade_layout) names no record: load it whole.
if status == 'reset' and entries[1][2][1] == 'u' then return reload end
local budget = tonumber(ARGV[4])
local seen, order = {}, {}
local upto = last
for i = 1, #entries do
  local id = entries[i][1]
  if id ~= string.format('%d-0', upto + 1) then return reload end
  local f = entries[i][2]
  seen_v = ''
  for j = 2, #f, 2 do
    if f[j - 1] == 'v' then
      seen_v = f[j]
    elseif not seen[f[j]] then
      seen[f[j]] = true
      order[#order + 1] = f[j]
    end
  end
  upto = upto + 1
  if #order >= budget then break end
end
local out = {inc, upto, g, now, status, sp, seen_v}
for i = 1, #order do
  local h = redis.pcall('HMGET', REC .. order[i], 's', 'v', 'r', 'e', 't')
  if h.err then
    -- Only a key of another type is "not a record"; any other error (a slot migrating)
    -- fails the script, to be run again.
    if not string.find(h.err, 'WRONGTYPE', 1, true) then return redis.error_reply(h.err) end
    h = {false, h.err, false, false, false}
  end
  out[#out + 1] = order[i]
  for j = 1, 5 do out[#out + 1] = h[j] end
end
return out
