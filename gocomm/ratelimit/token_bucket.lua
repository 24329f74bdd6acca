-- Token bucket as GCRA (generic cell rate algorithm): one key per limited key holding the
-- theoretical arrival time (TAT), in µs of Redis time, and the id of the admission that set it
-- (so that token_bucket_refund.lua can give back that admission). The bucket starts full.
--
-- KEYS[1]  "<TAT> <id>": the TAT as a decimal string, a space, the latest admission's id
-- ARGV[1]  emission interval in µs: 1e6 / rate (may be fractional)
-- ARGV[2]  burst: the bucket's capacity
-- ARGV[3]  a unique id for this request: the token of its admission
--
-- Returns 0 when admitted, else the milliseconds until a request may pass (>= 1).
-- The key expires when the bucket is full again, when it is the same as no key at all.
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local tat = now
local stored = redis.call('GET', key)
if stored then
  -- A value written before ids were kept holds the TAT alone.
  local space = string.find(stored, ' ', 1, true)
  tat = tonumber(space and string.sub(stored, 1, space - 1) or stored)
  if tat < now then
    tat = now
  end
end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  -- Refused; here tat > now, so the key exists: keep its TTL at the time the bucket refills.
  redis.call('PEXPIRE', key, math.max(1, math.ceil((tat - now) / 1000)))
  return math.max(1, math.ceil((allow_at - now) / 1000))
end
-- %.17g keeps every bit of the double (tostring would round to 14 digits).
redis.call('SET', key, string.format('%.17g', new_tat) .. ' ' .. ARGV[3],
  'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return 0
