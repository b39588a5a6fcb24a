-- ninsho RedisStore: compare-and-set a device on its version.
--
-- KEYS[1]  the device hash           ({prefix}:device:{len}:{account}:{id})
-- KEYS[2]  the account's device set  ({prefix}:devices:{account})
-- ARGV[1]  the expected stored version (decimal)
-- ARGV[2]  the new record as JSON
-- ARGV[3]  the new record's version (decimal)
-- ARGV[4]  the new expires_at in whole milliseconds since the epoch
-- ARGV[5]  the device id (set member)
-- ARGV[6]  the largest time to live allowed, in milliseconds
--
-- Returns 1 when replaced, 0 when the stored version differs or the device
-- is gone. Versions compare as strings: exact for every u64.
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then
  return 0
end
local old_ms = tonumber(redis.call('HGET', KEYS[1], 'expires_ms'))
local pttl = redis.call('PTTL', KEYS[1])
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'version', ARGV[3], 'expires_ms', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
-- HSET keeps the key's expiry. Move the deadline by exactly as much as
-- expires_at moved, so the retention after expiry stays what insert set;
-- the set is stretched to outlive the device, never shortened.
if pttl > 0 and old_ms then
  local ttl = pttl + (tonumber(ARGV[4]) - old_ms)
  if ttl < 1 then
    ttl = 1
  end
  local max = tonumber(ARGV[6])
  if ttl > max then
    ttl = max
  end
  local text = string.format('%d', ttl)
  redis.call('PEXPIRE', KEYS[1], text)
  if redis.call('PTTL', KEYS[2]) < ttl then
    redis.call('PEXPIRE', KEYS[2], text)
  end
end
return 1
