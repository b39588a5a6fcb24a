-- ninsho RedisStore: one hit on a fixed-window counter.
--
-- KEYS[1]  the counter hash          ({prefix}:limit:{key})
-- ARGV[1]  now, whole seconds since the epoch
-- ARGV[2]  now, nanosecond part
-- ARGV[3]  now + window, whole seconds since the epoch
-- ARGV[4]  now + window, nanosecond part
-- ARGV[5]  time to live of a new window's key in milliseconds (>= 1)
--
-- Returns {count, resets_s, resets_ns}. A counter that is absent or whose
-- window ended at or before now starts again at 1 with the window
-- [now, now + window); otherwise the count goes up by one and the window
-- end stays. Times compare as (seconds, nanoseconds): exact.
local cur = redis.call('HMGET', KEYS[1], 'count', 'resets_s', 'resets_ns')
if cur[1] and cur[2] and cur[3] then
  local s = tonumber(cur[2])
  local ns = tonumber(cur[3])
  local now_s = tonumber(ARGV[1])
  local now_ns = tonumber(ARGV[2])
  if s > now_s or (s == now_s and ns > now_ns) then
    local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
    return {count, cur[2], cur[3]}
  end
end
redis.call('HSET', KEYS[1], 'count', 1, 'resets_s', ARGV[3], 'resets_ns', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, ARGV[3], ARGV[4]}
