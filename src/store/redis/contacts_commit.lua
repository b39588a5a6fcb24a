-- ninsho RedisStore: write an account's contact book and change its claims,
-- all or nothing.
--
-- KEYS[1]      the book hash            ({prefix}:contacts:{account})
-- KEYS[2]      the account's claim set  ({prefix}:claims:{account})
-- KEYS[3 .. 2 + n]       the claim keys to claim    ({prefix}:claim:{key})
-- KEYS[3 + n .. #KEYS]   the claim keys to release  ({prefix}:claim:{key})
-- ARGV[1]      the expected stored version (decimal), or '' for "no book"
-- ARGV[2]      the new book as JSON
-- ARGV[3]      the new book's version (decimal)
-- ARGV[4]      the account id (the value of its claim keys)
-- ARGV[5]      n, how many keys to claim
-- ARGV[k + 3]  for each KEYS[k], k >= 3: the bare claim key (set member)
--
-- Returns {0, 0} when committed, {1, 0} when the stored version differs
-- (or a book exists when none was expected), and {2, i} when the i-th key
-- to claim (counting from 0) belongs to another account; in the last two
-- cases nothing is written. Versions compare as strings: exact for every
-- u64. Releases come before claims, so a key both released and claimed
-- stays claimed. Only keys the account holds are released.
local stored = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '' then
  if stored then
    return {1, 0}
  end
elseif stored ~= ARGV[1] then
  return {1, 0}
end
local account = ARGV[4]
local n = tonumber(ARGV[5])
for i = 1, n do
  local owner = redis.call('GET', KEYS[2 + i])
  if owner and owner ~= account then
    return {2, i - 1}
  end
end
for k = 3 + n, #KEYS do
  if redis.call('GET', KEYS[k]) == account then
    redis.call('DEL', KEYS[k])
    redis.call('SREM', KEYS[2], ARGV[k + 3])
  end
end
for k = 3, 2 + n do
  redis.call('SET', KEYS[k], account)
  redis.call('SADD', KEYS[2], ARGV[k + 3])
end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'version', ARGV[3])
return {0, 0}
