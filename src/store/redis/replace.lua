-- ninsho RedisStore: compare-and-set a challenge (or a combined
-- verification) on its version.
--
-- KEYS[1]  the record's hash         ({prefix}:challenge:{id} or
--                                     {prefix}:verification:{id})
-- ARGV[1]  the expected stored version (decimal)
-- ARGV[2]  the new record as JSON
-- ARGV[3]  the new record's version (decimal)
-- ARGV[4]  the new expires_at in whole milliseconds since the epoch
-- ARGV[5]  the new expires_at in whole seconds since the epoch
-- ARGV[6]  the new expires_at's nanosecond part
-- ARGV[7]  the largest time to live allowed, in milliseconds
--
-- Returns 1 when replaced, 0 when the stored version differs or the
-- record is gone. Versions compare as strings: exact for every u64.
local stored = redis.call('HMGET', KEYS[1], 'version', 'expires_ms')
if stored[1] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1],
  'record', ARGV[2],
  'version', ARGV[3],
  'expires_ms', ARGV[4],
  'expires_s', ARGV[5],
  'expires_ns', ARGV[6])
-- HSET keeps the key's expiry. When expires_at moved (a resend), move the
-- deadline by exactly as much, so the retention after expiry stays what
-- insert set; a guess leaves it, and the key's time to live, alone.
if stored[2] and stored[2] ~= ARGV[4] then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > 0 then
    local ttl = pttl + (tonumber(ARGV[4]) - tonumber(stored[2]))
    if ttl < 1 then
      ttl = 1
    end
    local max = tonumber(ARGV[7])
    if ttl > max then
      ttl = max
    end
    redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
  end
end
return 1
