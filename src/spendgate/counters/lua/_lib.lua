-- spendgate counters: helpers prepended to every script (see docs/counters.md).
--
-- ARGV[1] is always the key prefix with its hash tag, e.g. "spendgate:{sg}:". Per counter key K:
--   <P>c:K  hash  s = spent, r = reserved, h:<hold_id> = amount that hold keeps on K
--   <P>x:K  zset  hold_id -> hold expiry (epoch s, the caller's clock): lazy expiry of holds on K
-- per hold: <P>h:<id> hash  st = held|done, x = expiry, k = JSON [[key, amount], ...], t = record TTL ms
-- rate window <P>w:K zset entry_id -> timestamp, <P>a:K hash entry_id -> amount and '#' = total;
-- leases <P>l:K zset lease_id -> expiry.
--
-- Counter values are int64 decimal strings. Lua numbers are doubles, so values are never stored
-- through a Lua number: they go from ARGV or HGET straight to HINCRBY/HSET, and sums are compared
-- with two base-1e9 limbs.
local P = ARGV[1]
local INT64_MAX = '9223372036854775807'

local function ckey(k) return P .. 'c:' .. k end
local function xkey(k) return P .. 'x:' .. k end
local function hkey(id) return P .. 'h:' .. id end

-- "12345678901234" -> 12345, 678901234 (both exact doubles)
local function limbs(s)
  local n = #s
  if n <= 9 then return 0, tonumber(s) end
  return tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
end

-- a + b + c > cap, for non-negative int64 strings
local function sum_gt(a, b, c, cap)
  local ah, al = limbs(a)
  local bh, bl = limbs(b)
  local ch, cl = limbs(c)
  local lo = al + bl + cl
  local hi = ah + bh + ch + math.floor(lo / 1e9)
  lo = lo % 1e9
  local kh, kl = limbs(cap)
  return hi > kh or (hi == kh and lo > kl)
end

-- take hold `id` off counter key k (no-op if it is not there)
local function unhold(k, id)
  if redis.call('ZREM', xkey(k), id) == 1 then
    local c = ckey(k)
    local amount = redis.call('HGET', c, 'h:' .. id)
    if amount then
      redis.call('HDEL', c, 'h:' .. id)
      if amount ~= '0' then redis.call('HINCRBY', c, 'r', '-' .. amount) end
    end
  end
end

-- take every key of a held record off its counters
local function drop_hold(items_json, id)
  for _, item in ipairs(cjson.decode(items_json)) do unhold(item[1], id) end
end

-- drop the holds on counter key k that lapsed at or before now
local function trim(k, now)
  local due = redis.call('ZRANGEBYSCORE', xkey(k), '-inf', now)
  for _, id in ipairs(due) do unhold(k, id) end
end
