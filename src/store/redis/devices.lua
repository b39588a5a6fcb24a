-- ninsho RedisStore: every device record of an account.
--
-- KEYS[1]  the account's device set  ({prefix}:devices:{account})
-- ARGV[1]  the account's device key prefix ({prefix}:device:{len}:{account}:)
--
-- Returns the records' JSON, in no particular order. Ids whose hash Redis
-- already dropped (native expiry) leave the set.
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local json = redis.call('HGET', ARGV[1] .. id, 'record')
  if json then
    out[#out + 1] = json
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
