-- Give back one admission of the sliding-window log (sliding_window.lua): remove its member.
--
-- KEYS[1]  the sorted set of admitted requests
-- ARGV[1]  the member the admission added (its token)
--
-- Removing a member that is gone (given back already, trimmed, or never there) changes nothing,
-- so a token gives back at most its own admission, once. The key keeps its TTL; Redis deletes it
-- when its last member goes. Returns 1 when something was given back, else 0.
return redis.call('ZREM', KEYS[1], ARGV[1])
