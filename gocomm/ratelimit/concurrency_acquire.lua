-- Take one of `max_active` slots for a key, as a lease that expires unless renewed.
--
-- KEYS[1]  sorted set of leases: member = lease token, score = lease expiry in µs of Redis time
-- ARGV[1]  max_active
-- ARGV[2]  lease in µs (integer)
-- ARGV[3]  this lease's token (unique)
--
-- Returns 1 when the slot is taken, 0 when every slot is in use.
-- The key's TTL is never shorter than the longest lease in it.
local key = KEYS[1]
local max_active = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl = math.ceil(lease / 1000)

-- Leases of holders that stopped renewing (a killed process) end here.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= max_active then
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ttl)
  end
  return 0
end
redis.call('ZADD', key, now + lease, ARGV[3])
if redis.call('PTTL', key) < ttl then
  redis.call('PEXPIRE', key, ttl)
end
return 1
