-- init (SETNX semantics, never adds): ARGV = P, key, spent, expire_at_ms|'' -> 1 if created, 0 if it existed
local k, spent, expire_at = ARGV[2], ARGV[3], ARGV[4]
local c = ckey(k)
if redis.call('EXISTS', c) == 1 then return 0 end
redis.call('DEL', xkey(k)) -- holds of a lost incarnation of k must not be taken off the new one
redis.call('HSET', c, 's', spent, 'r', '0')
if expire_at ~= '' then redis.call('PEXPIREAT', c, expire_at) end
return 1
