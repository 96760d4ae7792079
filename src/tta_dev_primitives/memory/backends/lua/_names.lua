-- The namespace's key names: ARGV[1] is its base; KEYS[1] (its LRU index) is the one key
-- declared, because it exists whenever the namespace has records (see redis_scripts).
local base = ARGV[1]
local LRU = KEYS[1]
local TTL = base .. 'ttl'
local ST = base .. 'st'
local PENDING = base .. 'q'
local REC = base .. 'r:'
