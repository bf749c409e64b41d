-- read: ARGV = P, now, key... -> flat list of (initialized 0|1, spent, reserved) per key
local now = ARGV[2]
local out = {}
for i = 3, #ARGV do
  local k = ARGV[i]
  if redis.call('EXISTS', ckey(k)) == 0 then
    out[#out + 1] = 0; out[#out + 1] = '0'; out[#out + 1] = '0'
  else
    trim(k, now)
    local v = redis.call('HMGET', ckey(k), 's', 'r')
    out[#out + 1] = 1; out[#out + 1] = v[1] or '0'; out[#out + 1] = v[2] or '0'
  end
end
return out
