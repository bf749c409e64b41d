-- compare_and_set: ARGV = P, key, expected, spent -> 1 if set, 0 if the key is missing or spent moved
local c = ckey(ARGV[2])
if redis.call('HGET', c, 's') ~= ARGV[3] then return 0 end
redis.call('HSET', c, 's', ARGV[4])
return 1
