-- concurrency_acquire: ARGV = P, key, lease_id, limit, now, expires_at, ttl_ms -> 1 if held, 0 if full
local l = P .. 'l:' .. ARGV[2]
local lease, limit, now, expires_at, ttl = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', l, '-inf', now)
if not redis.call('ZSCORE', l, lease) and redis.call('ZCARD', l) >= limit then return 0 end
redis.call('ZADD', l, expires_at, lease)
if redis.call('PTTL', l) < ttl then redis.call('PEXPIRE', l, ttl) end
return 1
