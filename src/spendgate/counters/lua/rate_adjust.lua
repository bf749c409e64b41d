-- rate_adjust: ARGV = P, key, now, cutoff, delta, entry_id|'', new_id, ttl_ms
local k, now, cutoff, id, new_id, ttl = ARGV[2], ARGV[3], ARGV[4], ARGV[6], ARGV[7], ARGV[8]
local delta = tonumber(ARGV[5])
rtrim(k, cutoff)
local current = id ~= '' and redis.call('HGET', akey(k), id)
if current then
  local old = tonumber(current)
  rchange(k, id, old, math.max(0, old + delta))
elseif delta > 0 then
  radd(k, now, new_id, delta)
elseif id == '' then -- no entry named: take the correction off the newest entries
  local remaining = -delta
  for _, newest in ipairs(redis.call('ZREVRANGE', wkey(k), 0, -1)) do
    local amount = tonumber(redis.call('HGET', akey(k), newest))
    local taken = math.min(amount, remaining)
    rchange(k, newest, amount, amount - taken)
    remaining = remaining - taken
    if remaining == 0 then break end
  end
end
if redis.call('EXISTS', wkey(k)) == 1 then rexpire(k, ttl) end
return 1
