-- rate_acquire: ARGV = P, key, now, cutoff, amount, limit, entry_id, ttl_ms
-- -> {1, used} | {0, used, timestamp of the entry whose expiry makes room or ''}
local k, now, cutoff, id, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[7], ARGV[8]
local amount, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
rtrim(k, cutoff)
local total = rtotal(k)
if total + amount <= limit then
  radd(k, now, id, amount)
  rexpire(k, ttl)
  return {1, total + amount}
end
if amount > limit then return {0, total, ''} end
local need, freed = total + amount - limit, 0
local entries = redis.call('ZRANGE', wkey(k), 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  freed = freed + tonumber(redis.call('HGET', akey(k), entries[i]))
  if freed >= need then return {0, total, entries[i + 1]} end
end
return {0, total, ''}
