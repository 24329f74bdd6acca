-- Exact sliding-window log: admit a request when fewer than `limit` were admitted in the last
-- `window` microseconds of Redis time. One call is one decision, atomic on the server.
--
-- KEYS[1]  sorted set of admitted requests: member = a unique id per request, score = the Redis
--          time (µs) it was admitted at
-- ARGV[1]  window in µs (integer)
-- ARGV[2]  limit: requests admitted per window
-- ARGV[3]  unique member for this request (so requests in the same microsecond all count)
--
-- Returns 0 when admitted, else the milliseconds until a request may pass (>= 1).
-- The key always ends with a TTL of one window: after that every entry is out of the window.
local key = KEYS[1]
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl = math.ceil(window / 1000)

-- Trim before counting: an entry counts while now - score < window.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  -- Check before inserting: a refused request leaves no entry behind.
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, ttl)
  return 0
end

-- Refused: the request may pass once the entry that keeps the count at `limit` leaves the window.
local pivot = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
redis.call('PEXPIRE', key, ttl)
local wait = tonumber(pivot[2]) + window - now
return math.max(1, math.ceil(wait / 1000))
