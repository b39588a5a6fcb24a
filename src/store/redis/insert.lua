-- ninsho RedisStore: insert a challenge (or a combined verification) only
-- if its id is free.
--
-- KEYS[1]  the record's hash         ({prefix}:challenge:{id} or
--                                     {prefix}:verification:{id})
-- ARGV[1]  the record as JSON
-- ARGV[2]  the record's version (decimal)
-- ARGV[3]  expires_at in whole milliseconds since the epoch
-- ARGV[4]  expires_at in whole seconds since the epoch
-- ARGV[5]  expires_at's nanosecond part, 0 to 999999999
-- ARGV[6]  time to live of the key in milliseconds (>= 1)
--
-- Returns 1 when stored, 0 when a record with this id exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1],
  'record', ARGV[1],
  'version', ARGV[2],
  'expires_ms', ARGV[3],
  'expires_s', ARGV[4],
  'expires_ns', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
