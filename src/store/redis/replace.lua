-- ninsho RedisStore: compare-and-set a challenge on its version.
--
-- KEYS[1]  the challenge hash        ({prefix}:challenge:{id})
-- KEYS[2]  the expiry index          ({prefix}:challenges:by_expiry)
-- ARGV[1]  the expected stored version (decimal)
-- ARGV[2]  the new record as JSON
-- ARGV[3]  the new record's version (decimal)
-- ARGV[4]  the new expires_at in whole milliseconds since the epoch
-- ARGV[5]  the new expires_at in whole seconds since the epoch
-- ARGV[6]  the new expires_at's nanosecond part
-- ARGV[7]  the challenge id (index member)
-- ARGV[8]  the largest time to live allowed, in milliseconds
--
-- Returns 1 when replaced, 0 when the stored version differs or the
-- challenge is gone. Versions compare as strings: exact for every u64.
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
  return 0
end
local old_ms = tonumber(redis.call('HGET', KEYS[1], 'expires_ms'))
local pttl = redis.call('PTTL', KEYS[1])
redis.call('HSET', KEYS[1],
  'record', ARGV[2],
  'version', ARGV[3],
  'expires_ms', ARGV[4],
  'expires_s', ARGV[5],
  'expires_ns', ARGV[6])
-- HSET keeps the key's expiry. Move the deadline by exactly as much as
-- expires_at moved, so the retention after expiry stays what insert set.
if pttl > 0 and old_ms then
  local ttl = pttl + (tonumber(ARGV[4]) - old_ms)
  if ttl < 1 then
    ttl = 1
  end
  local max = tonumber(ARGV[8])
  if ttl > max then
    ttl = max
  end
  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
return 1
