-- ninsho RedisStore: compare-and-set an account's recovery set on its salt
-- and version.
--
-- KEYS[1]  the recovery hash         ({prefix}:recovery:{account})
-- ARGV[1]  the expected stored salt, 32 lower-case hex digits
-- ARGV[2]  the expected stored version (decimal)
-- ARGV[3]  the new set as JSON
-- ARGV[4]  the new set's salt, 32 lower-case hex digits
-- ARGV[5]  the new set's version (decimal)
--
-- Returns 1 when replaced, 0 when the stored salt or version differs or
-- there is no set. Both compare as strings: exact for every salt and u64.
local cur = redis.call('HMGET', KEYS[1], 'salt', 'version')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'record', ARGV[3], 'salt', ARGV[4], 'version', ARGV[5])
return 1
