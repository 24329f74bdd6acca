-- Give a slot back. Removing the last lease deletes the key; otherwise its TTL stays.
--
-- KEYS[1]  sorted set of leases (see concurrency_acquire.lua)
-- ARGV[1]  the lease's token
--
-- Returns 1 when the lease was held, 0 when it had already expired.
return redis.call('ZREM', KEYS[1], ARGV[1])
