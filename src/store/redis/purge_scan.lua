-- ninsho RedisStore: delete, among the keys given, the records whose
-- lifetime ended before a cut-off.
--
-- KEYS     candidate hashes of one kind found by SCAN (one batch): under
--          {prefix}:limit:, {prefix}:device:, {prefix}:challenge: or
--          {prefix}:verification:
-- ARGV[1]  `before` in whole seconds since the epoch
-- ARGV[2]  `before`'s nanosecond part
-- ARGV[3]  `before` in whole milliseconds since the epoch (floor)
-- ARGV[4]  the kind: 'limit', 'device' or 'expiring' (a challenge or a
--          combined verification)
--
-- Returns how many keys this call deleted.
--
-- A counter (fields resets_s, resets_ns) goes when its window ended at or
-- before the cut-off, compared to the nanosecond. A challenge or a
-- verification (fields expires_s, expires_ns) goes when it expired before
-- the cut-off, to the nanosecond. A device (field expires_ms) goes when it
-- expired in a millisecond before the cut-off's. A key that vanished since
-- the SCAN, or lacks its kind's fields, is left alone.
local before_s = tonumber(ARGV[1])
local before_ns = tonumber(ARGV[2])
local before_ms = tonumber(ARGV[3])
local kind = ARGV[4]
local deleted = 0
for _, key in ipairs(KEYS) do
  if kind == 'device' then
    local ms = redis.call('HGET', key, 'expires_ms')
    if ms and tonumber(ms) < before_ms then
      deleted = deleted + redis.call('DEL', key)
    end
  else
    local f
    if kind == 'limit' then
      f = redis.call('HMGET', key, 'resets_s', 'resets_ns')
    else
      f = redis.call('HMGET', key, 'expires_s', 'expires_ns')
    end
    if f[1] and f[2] then
      local s = tonumber(f[1])
      local ns = tonumber(f[2])
      -- A window ends at its reset instant; a record lives until, not
      -- through, its expiry.
      if s < before_s or (s == before_s and (ns < before_ns or (kind == 'limit' and ns == before_ns))) then
        deleted = deleted + redis.call('DEL', key)
      end
    end
  end
end
return deleted
