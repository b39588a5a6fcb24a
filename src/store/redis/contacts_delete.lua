-- ninsho RedisStore: delete an account's contact book and release every
-- claim it holds.
--
-- KEYS[1]  the book hash            ({prefix}:contacts:{account})
-- KEYS[2]  the account's claim set  ({prefix}:claims:{account})
-- ARGV[1]  the claim key prefix     ({prefix}:claim:)
-- ARGV[2]  the account id
--
-- A claim key is deleted only if it still names the account. Returns 1.
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local claim = ARGV[1] .. key
  if redis.call('GET', claim) == ARGV[2] then
    redis.call('DEL', claim)
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
