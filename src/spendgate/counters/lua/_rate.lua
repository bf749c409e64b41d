-- helpers for the sliding-window scripts (prepended after _lib.lua). Amounts stay below 2^53.
local function wkey(k) return P .. 'w:' .. k end
local function akey(k) return P .. 'a:' .. k end

-- drop the entries of window k at or before cutoff
local function rtrim(k, cutoff)
  local w, a = wkey(k), akey(k)
  local due = redis.call('ZRANGEBYSCORE', w, '-inf', cutoff)
  if #due == 0 then return end
  for _, id in ipairs(due) do
    local amount = redis.call('HGET', a, id)
    if amount then
      redis.call('HDEL', a, id)
      if amount ~= '0' then redis.call('HINCRBY', a, '#', '-' .. amount) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', w, '-inf', cutoff)
end

-- set an entry's amount; an entry brought to zero is removed
local function rchange(k, id, old, new)
  if new == 0 then
    redis.call('HDEL', akey(k), id)
    redis.call('ZREM', wkey(k), id)
  else
    redis.call('HSET', akey(k), id, new)
  end
  redis.call('HINCRBY', akey(k), '#', new - old)
end

local function radd(k, now, id, amount)
  redis.call('ZADD', wkey(k), now, id)
  redis.call('HSET', akey(k), id, amount)
  redis.call('HINCRBY', akey(k), '#', amount)
end

local function rtotal(k) return tonumber(redis.call('HGET', akey(k), '#') or '0') end

-- keep both keys until the last entry has slid out (Redis clock, relative: only garbage collection)
local function rexpire(k, ttl_ms)
  redis.call('PEXPIRE', wkey(k), ttl_ms)
  redis.call('PEXPIRE', akey(k), ttl_ms)
end
