-- ninsho RedisStore: read the records of one journey step (or one account
-- record), after checking the store's initialisation marker.
--
-- KEYS[1]      the marker                  ({prefix}:meta:initialised)
-- KEYS[2 ..]   the records to read; the letter at the same position in
--              ARGV[1] (the first letter for KEYS[2]) says how:
--              'r'  a hash whose `record` field is returned: an account
--                   record, a challenge or a device
--              'f'  a failure run hash: its `consecutive`, `last_s` and
--                   `last_ns` fields, in that order
-- ARGV[1]      one letter per key after the marker
--
-- Returns {'0'} when the marker is absent (the store lost its data or was
-- never initialised), and reads nothing. Otherwise {'1', ...}: for each key
-- in order, one string for 'r' and three for 'f'. An absent record or
-- field is '' (never a stored value: records are JSON, fields decimal
-- numbers), so the reply is the same under RESP2 and RESP3.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0'}
end
local out = {'1'}
for i = 2, #KEYS do
  if string.sub(ARGV[1], i - 1, i - 1) == 'f' then
    local run = redis.call('HMGET', KEYS[i], 'consecutive', 'last_s', 'last_ns')
    for j = 1, 3 do
      out[#out + 1] = run[j] or ''
    end
  else
    out[#out + 1] = redis.call('HGET', KEYS[i], 'record') or ''
  end
end
return out
