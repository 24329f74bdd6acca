-- Extend a held lease by one lease period from now.
--
-- KEYS[1]  sorted set of leases (see concurrency_acquire.lua)
-- ARGV[1]  lease in µs (integer)
-- ARGV[2]  the lease's token
--
-- Returns 1 when renewed, 0 when the lease is gone (expired and reclaimed, or released):
-- a lost lease is never brought back, since its slot may belong to someone else now.
local key = KEYS[1]
local lease = tonumber(ARGV[1])
if not redis.call('ZSCORE', key, ARGV[2]) then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl = math.ceil(lease / 1000)
redis.call('ZADD', key, 'XX', now + lease, ARGV[2])
if redis.call('PTTL', key) < ttl then
  redis.call('PEXPIRE', key, ttl)
end
return 1
