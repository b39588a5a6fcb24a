-- ninsho RedisStore: store a newly trusted device only if its id is free.
--
-- KEYS[1]  the device hash           ({prefix}:device:{len}:{account}:{id})
-- KEYS[2]  the account's device set  ({prefix}:devices:{account})
-- ARGV[1]  the record as JSON
-- ARGV[2]  the record's version (decimal)
-- ARGV[3]  expires_at in whole milliseconds since the epoch
-- ARGV[4]  time to live of the key in milliseconds (>= 1)
-- ARGV[5]  the device id (set member)
--
-- Returns 1 when stored, 0 when the account has a device with this id.
-- The set lives at least as long as its longest-lived device, so it never
-- forgets a live one and goes away after the last.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'version', ARGV[2], 'expires_ms', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
-- PTTL is -1 for a set just created: it gets its first expiry here.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 1
