"""The Lua scripts of :class:`gocomm.health.RedisCircuitBreaker`.

Every circuit is one hash, ``<prefix>{<name>}``, times in milliseconds of Redis ``TIME``::

    until       while set, the circuit is open until then, and half-open after
    p1..pN      half-open: the expiry of each probe slot taken
    eI cI fI    closed: bucket I (epoch % buckets) of the window: its epoch, calls, failures

Every write leaves a TTL on the hash; a hash that expired is a closed circuit.
"""

from __future__ import annotations

import hashlib

from gocomm.ratelimit.redis_scripts import Script

__all__ = ["DECIDE", "RELEASE"]

# Adds outcomes, then (when asked) decides. One script, so that a decision carries the
# outcomes recorded since the last one in the same call.
#
# ARGV  1 successes  2 failures  3 window (ms)  4 buckets  5 minimum_calls  6 failure_ratio
#       7 open_for (ms)  8 ttl (ms)  9 half_open_calls  10 decide (1) or only record (0)
# Returns {0, 0} admitted, {0, 1} admitted as a half-open probe, {1, ms} refused for ms more.
_DECIDE = """
local key = KEYS[1]
local ok, failed = tonumber(ARGV[1]), tonumber(ARGV[2])
local open_for, ttl = tonumber(ARGV[7]), ARGV[8]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open_until = tonumber(redis.call('HGET', key, 'until'))

local function open()
  redis.call('DEL', key)
  redis.call('HSET', key, 'until', now + open_for)
  redis.call('PEXPIRE', key, ttl)
  open_until = now + open_for
end

if ok + failed > 0 then
  if open_until then
    -- Open: late outcomes of calls admitted before say nothing new. Half-open: a probe's.
    if now >= open_until then
      if failed > 0 then
        open()
      else
        redis.call('DEL', key)
        open_until = nil
      end
    end
  else
    local buckets = tonumber(ARGV[4])
    local epoch = math.floor(now / (tonumber(ARGV[3]) / buckets))
    local slot = epoch % buckets
    local e, c, f = 'e' .. slot, 'c' .. slot, 'f' .. slot
    if tonumber(redis.call('HGET', key, e)) ~= epoch then
      redis.call('HSET', key, e, epoch, c, 0, f, 0)
    end
    redis.call('HINCRBY', key, c, ok + failed)
    redis.call('PEXPIRE', key, ttl)
    if failed > 0 then
      redis.call('HINCRBY', key, f, failed)
      local calls, failures = 0, 0
      for s = 0, buckets - 1 do
        local row = redis.call('HMGET', key, 'e' .. s, 'c' .. s, 'f' .. s)
        if row[1] and tonumber(row[1]) > epoch - buckets then
          calls = calls + tonumber(row[2])
          failures = failures + tonumber(row[3])
        end
      end
      if calls >= tonumber(ARGV[5]) and failures >= tonumber(ARGV[6]) * calls then
        open()
      end
    end
  end
end

if ARGV[10] ~= '1' or not open_until then return {0, 0} end
if now < open_until then return {1, math.max(1, open_until - now)} end
local earliest = nil
for i = 1, tonumber(ARGV[9]) do
  local field = 'p' .. i
  local expiry = tonumber(redis.call('HGET', key, field))
  if not expiry or expiry <= now then
    redis.call('HSET', key, field, now + open_for)
    redis.call('PEXPIRE', key, ttl)
    return {0, 1}
  end
  if not earliest or expiry < earliest then earliest = expiry end
end
return {1, math.max(1, earliest - now)}
"""

# Frees the most recently taken probe slot (its call ended with no evidence either way).
# ARGV  1 half_open_calls
_RELEASE = """
local key = KEYS[1]
local latest, field = nil, nil
for i = 1, tonumber(ARGV[1]) do
  local expiry = tonumber(redis.call('HGET', key, 'p' .. i))
  if expiry and (not latest or expiry > latest) then latest, field = expiry, 'p' .. i end
end
if field then redis.call('HDEL', key, field) end
return 0
"""


def _script(name: str, source: str) -> Script:
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


DECIDE = _script("breaker_decide", _DECIDE)
RELEASE = _script("breaker_release", _RELEASE)
