-- ninsho RedisStore: delete, among the keys given, the rate-limit counters
-- and trusted devices whose lifetime ended before a cut-off.
--
-- KEYS     candidate hashes found by SCAN under {prefix}:limit: and
--          {prefix}:device: (one batch)
-- ARGV[1]  `before` in whole seconds since the epoch
-- ARGV[2]  `before`'s nanosecond part
-- ARGV[3]  `before` in whole milliseconds since the epoch (floor)
--
-- Returns {counters, devices}: how many of each this call deleted.
--
-- A counter (fields resets_s, resets_ns) goes when its window ended at or
-- before the cut-off, compared to the nanosecond. A device (field
-- expires_ms) goes when it expired in a millisecond before the cut-off's.
-- A key that vanished since the SCAN, or is neither, is left alone.
local before_s = tonumber(ARGV[1])
local before_ns = tonumber(ARGV[2])
local before_ms = tonumber(ARGV[3])
local counters = 0
local devices = 0
for _, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'resets_s', 'resets_ns', 'expires_ms')
  if f[1] and f[2] then
    local s = tonumber(f[1])
    local ns = tonumber(f[2])
    if s < before_s or (s == before_s and ns <= before_ns) then
      counters = counters + redis.call('DEL', key)
    end
  elseif f[3] then
    if tonumber(f[3]) < before_ms then
      devices = devices + redis.call('DEL', key)
    end
  end
end
return {counters, devices}
