-- The namespace's keys. Scripts that change a namespace declare its lru, st and log keys
-- first (KEYS[1..3]: they exist together, from the namespace's first write until it is
-- emptied or, every record having expired, they expire),
-- then the record keys the client names. ARGV[1] is the namespace's base, from which the
-- keys a script finds while it runs are built: the ttl index (absent while no record
-- expires) and the records it evicts or purges.
local base = ARGV[1]
local LRU, ST, LOG = KEYS[1], KEYS[2], KEYS[3]
local TTL = base .. 'ttl'
local REC = base .. 'h:'
