-- ninsho RedisStore: delete one device.
--
-- KEYS[1]  the device hash           ({prefix}:device:{len}:{account}:{id})
-- KEYS[2]  the account's device set  ({prefix}:devices:{account})
-- ARGV[1]  the device id (set member)
--
-- Returns 1 when the device existed, else 0.
local deleted = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return deleted
