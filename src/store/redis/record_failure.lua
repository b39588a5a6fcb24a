-- ninsho RedisStore: one more consecutive verification failure.
--
-- KEYS[1]  the failure hash          ({prefix}:failures:{account})
-- ARGV[1]  now, whole seconds since the epoch
-- ARGV[2]  now, nanosecond part
--
-- Returns {consecutive, last_s, last_ns}. The run saturates at u32::MAX.
local n = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
if n > 4294967295 then
  n = 4294967295
  redis.call('HSET', KEYS[1], 'consecutive', n)
end
redis.call('HSET', KEYS[1], 'last_s', ARGV[1], 'last_ns', ARGV[2])
return {n, ARGV[1], ARGV[2]}
