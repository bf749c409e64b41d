-- commit / release: ARGV = P, now, hold_id, settled_ttl_ms, n, then n x (key, amount)
-- -> {'already'} | {'ok', hold_found, key, spent after, ...} | {'needs_init', key...} | {'overflow', key, spent, amount}
local now, id, marker_ttl, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local h = hkey(id)
local state = redis.call('HGET', h, 'st')
if state == 'done' then return {'already'} end

local items, missing = {}, {}
for i = 0, n - 1 do
  local item = {ARGV[6 + i * 2], ARGV[7 + i * 2]}
  if item[2] ~= '0' then
    items[#items + 1] = item
    if redis.call('EXISTS', ckey(item[1])) == 0 then missing[#missing + 1] = item[1] end
  end
end
if #missing > 0 then return {'needs_init', unpack(missing)} end
for _, item in ipairs(items) do
  local spent = redis.call('HGET', ckey(item[1]), 's') or '0'
  if sum_gt(spent, item[2], '0', INT64_MAX) then return {'overflow', item[1], spent, item[2]} end
end

local found = '0'
if state == 'held' then
  local v = redis.call('HMGET', h, 'x', 'k', 't')
  if tonumber(v[1]) > tonumber(now) then found = '1' end
  drop_hold(v[2], id)
  marker_ttl = v[3]
end
local reply = {'ok', found}
for _, item in ipairs(items) do
  redis.call('HINCRBY', ckey(item[1]), 's', item[2])
  reply[#reply + 1] = item[1]
  reply[#reply + 1] = redis.call('HGET', ckey(item[1]), 's')  -- a string: exact past 2^53
end
redis.call('DEL', h)
redis.call('HSET', h, 'st', 'done')
redis.call('PEXPIRE', h, marker_ttl)
return reply
