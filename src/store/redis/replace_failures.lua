-- ninsho RedisStore: compare-and-set an account's failure run.
--
-- KEYS[1]  the failure hash          ({prefix}:failures:{account})
-- ARGV[1]  '1' when a run is expected, '0' when none is
-- ARGV[2]  the expected consecutive count (decimal)
-- ARGV[3]  the expected last failure, whole seconds since the epoch
-- ARGV[4]  the expected last failure, nanosecond part
-- ARGV[5]  '1' to write the new run, '0' to end the run
-- ARGV[6]  the new consecutive count (decimal)
-- ARGV[7]  the new last failure, whole seconds since the epoch
-- ARGV[8]  the new last failure, nanosecond part
--
-- Returns 1 when replaced, 0 when the stored run is not the expected one.
-- Fields compare as strings: the writer always formats them the same way.
local cur = redis.call('HMGET', KEYS[1], 'consecutive', 'last_s', 'last_ns')
if ARGV[1] == '1' then
  if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] or cur[3] ~= ARGV[4] then
    return 0
  end
elseif cur[1] then
  return 0
end
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'consecutive', ARGV[6], 'last_s', ARGV[7], 'last_ns', ARGV[8])
else
  redis.call('DEL', KEYS[1])
end
return 1
