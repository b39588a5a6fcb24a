-- ninsho RedisStore: delete challenges whose expires_at is before a time.
--
-- KEYS[1]  the expiry index          ({prefix}:challenges:by_expiry)
-- ARGV[1]  `before` in whole milliseconds since the epoch (floor)
-- ARGV[2]  `before` in whole seconds since the epoch
-- ARGV[3]  `before`'s nanosecond part
-- ARGV[4]  the challenge key prefix  ({prefix}:challenge:)
-- ARGV[5]  the most index entries to take strictly below ARGV[1]
--
-- Returns {deleted, more}: how many challenge keys this call deleted, and
-- 1 when the batch was full (call again), else 0.
--
-- Scores are whole milliseconds. Every entry scored below ARGV[1] expires
-- before `before`; entries scored exactly ARGV[1] are compared to the
-- nanosecond against the hash. An entry whose key Redis already dropped
-- (native expiry) leaves the index without being counted.
local deleted = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1],
  'LIMIT', 0, ARGV[5])
for _, id in ipairs(ids) do
  deleted = deleted + redis.call('DEL', ARGV[4] .. id)
  redis.call('ZREM', KEYS[1], id)
end
if #ids >= tonumber(ARGV[5]) then
  return {deleted, 1}
end
local before_s = tonumber(ARGV[2])
local before_ns = tonumber(ARGV[3])
local edge = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
for _, id in ipairs(edge) do
  local key = ARGV[4] .. id
  local at = redis.call('HMGET', key, 'expires_s', 'expires_ns')
  if not at[1] or not at[2] then
    redis.call('ZREM', KEYS[1], id)
  else
    local s = tonumber(at[1])
    local ns = tonumber(at[2])
    if s < before_s or (s == before_s and ns < before_ns) then
      deleted = deleted + redis.call('DEL', key)
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return {deleted, 0}
