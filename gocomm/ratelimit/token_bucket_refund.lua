-- Give back one admission of the token bucket (token_bucket.lua): take one emission interval
-- off the TAT, but only while that admission is the key's latest. Then the bucket is exactly as
-- if it had never happened. After a later admission nothing is given: whether the bucket filled
-- up in between (and so already took the token back) is not known, and giving back a token it
-- does not owe would let more through than the rate allows. The refund clears the stored id, so
-- a token gives back at most once.
--
-- KEYS[1]  "<TAT> <id>" (see token_bucket.lua)
-- ARGV[1]  emission interval in µs
-- ARGV[2]  the admission's id (its token)
--
-- The key keeps a TTL at the time the bucket is full again, or goes when it already is.
-- Returns 1 when something was given back, else 0.
local key = KEYS[1]
local stored = redis.call('GET', key)
if not stored then
  return 0
end
local space = string.find(stored, ' ', 1, true)
if not space or string.sub(stored, space + 1) ~= ARGV[2] then
  return 0
end
local tat = tonumber(string.sub(stored, 1, space - 1)) - tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if tat <= now then
  redis.call('DEL', key)
  return 1
end
redis.call('SET', key, string.format('%.17g', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
return 1
