-- ninsho RedisStore: store an account's first recovery set.
--
-- KEYS[1]  the recovery hash         ({prefix}:recovery:{account})
-- ARGV[1]  the set as JSON
-- ARGV[2]  the set's salt, 32 lower-case hex digits
-- ARGV[3]  the set's version (decimal)
--
-- Returns 1 when stored, 0 when the account already has a set.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'salt', ARGV[2], 'version', ARGV[3])
return 1
