-- ninsho RedisStore: insert a challenge only if its id is free.
--
-- KEYS[1]  the challenge hash        ({prefix}:challenge:{id})
-- KEYS[2]  the expiry index          ({prefix}:challenges:by_expiry)
-- ARGV[1]  the record as JSON
-- ARGV[2]  the record's version (decimal)
-- ARGV[3]  expires_at in whole milliseconds since the epoch (index score)
-- ARGV[4]  expires_at in whole seconds since the epoch
-- ARGV[5]  expires_at's nanosecond part, 0 to 999999999
-- ARGV[6]  time to live of the key in milliseconds (>= 1)
-- ARGV[7]  the challenge id (index member)
--
-- Returns 1 when stored, 0 when a challenge with this id exists.
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
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])
return 1
