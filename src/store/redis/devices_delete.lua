-- ninsho RedisStore: delete every device of an account.
--
-- KEYS[1]  the account's device set  ({prefix}:devices:{account})
-- ARGV[1]  the account's device key prefix ({prefix}:device:{len}:{account}:)
--
-- Returns how many device hashes it deleted (ids whose hash Redis already
-- dropped are not counted), and deletes the set.
local deleted = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return deleted
