-- reserve: ARGV = P, now, hold_id, expires_at, record_ttl_ms, n, then n x (key, amount, cap|'', expire_at_ms|'')
-- -> {'settled'} | {'ok', expires_at, already} | {'needs_init', key...} | {'denied'|'overflow', key, spent, reserved}
local now, id, expires_at, record_ttl, n = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local h = hkey(id)
local state = redis.call('HGET', h, 'st')
if state == 'done' then return {'settled'} end
if state == 'held' then
  local lapses = redis.call('HGET', h, 'x')
  if tonumber(lapses) > tonumber(now) then return {'ok', lapses, '1'} end
end

local items, missing = {}, {}
for i = 0, n - 1 do
  local b = 7 + i * 4
  local item = {ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]}
  items[#items + 1] = item
  if redis.call('EXISTS', ckey(item[1])) == 0 then missing[#missing + 1] = item[1] end
end
if #missing > 0 then return {'needs_init', unpack(missing)} end

-- a lapsed hold with this id is replaced: trimming takes it off these keys, and off its others when next touched
for _, item in ipairs(items) do trim(item[1], now) end
for _, item in ipairs(items) do
  local v = redis.call('HMGET', ckey(item[1]), 's', 'r')
  local spent, reserved = v[1] or '0', v[2] or '0'
  if item[3] == '' then
    if sum_gt(spent, reserved, item[2], INT64_MAX) then return {'overflow', item[1], spent, reserved} end
  elseif sum_gt(spent, reserved, item[2], item[3]) then
    return {'denied', item[1], spent, reserved}
  end
end

local record = {}
for _, item in ipairs(items) do
  local c, x = ckey(item[1]), xkey(item[1])
  redis.call('HINCRBY', c, 'r', item[2])
  redis.call('HSET', c, 'h:' .. id, item[2])
  redis.call('ZADD', x, expires_at, id)
  if item[4] ~= '' then
    redis.call('PEXPIREAT', c, item[4])
    redis.call('PEXPIREAT', x, item[4])
  end
  record[#record + 1] = {item[1], item[2]}
end
redis.call('DEL', h)
redis.call('HSET', h, 'st', 'held', 'x', expires_at, 'k', cjson.encode(record), 't', record_ttl)
redis.call('PEXPIRE', h, record_ttl)
return {'ok', expires_at, '0'}
