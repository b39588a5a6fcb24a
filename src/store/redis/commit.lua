-- ninsho RedisStore: one journey step (StepStore::commit), all or nothing.
--
-- Every key comes from the caller, none is built here. KEYS, in this
-- order, each group after the marker only when ARGV's header says it is
-- there:
--   marker     the initialisation marker        ({prefix}:meta:initialised)
--   hits       one counter hash per hit         ({prefix}:limit:{key})
--   failures   the failure run hash             ({prefix}:failures:{account})
--   challenge  the challenge hash               ({prefix}:challenge:{id})
--   device     the device hash, the id set      ({prefix}:device:{len}:{account}:{id},
--                                                {prefix}:devices:{account})
--   check      the record hash checked, not     ({prefix}:contacts:{account})
--              written
--   record     the record hash, the claim set   ({prefix}:contacts:{account},
--                                                {prefix}:claims:{account}),
--              the keys to claim, then the keys to release ({prefix}:claim:{key})
--
-- ARGV, read front to back:
--   header     hits (count), failures ('0'/'1'), challenge ('', 'insert',
--              'replace'), device ('0'/'1'), check ('0'/'1'), record
--              ('0'/'1'), keys to claim (count), keys to release (count), now
--              (whole seconds), now (nanosecond part)
--   per hit    window end (whole seconds), window end (nanosecond part),
--              time to live of a new window's key (ms, >= 1), max hits
--              (at most 2^53 - 1, so it compares exactly)
--   failures   as replace_failures.lua: '1'/'0' run expected, its count,
--              seconds and nanoseconds; '1'/'0' run to write, its count,
--              seconds and nanoseconds
--   challenge  expected version ('' for an insert), record JSON, version,
--              expires_at in whole ms, whole seconds and nanosecond part,
--              time to live of an inserted key (ms, >= 1), largest time to
--              live (ms)
--   device     record JSON, version, expires_at in whole ms, time to live
--              (ms, >= 1), id (set member)
--   check      the version the record must still have ('' for "no record")
--   record     expected version ('' for "no record"), record JSON, version,
--              account id (the value of its claim keys), then the bare claim
--              key (set member) of every claim key, in KEYS order
--
-- Returns five integers {outcome, a, b, c, d}:
--   {0, 0, 0, 0, 0}        done: every part written
--   {1, i, count, s, ns}   hit i (from 0) passed its max: hits 0..=i are
--                          charged, nothing else is written; count and the
--                          window end (s, ns) are that counter's after the hit
--   {2, i, 0, 0, 0}        the i-th key to claim (from 0) names another
--                          account: nothing written
--   {3, 0, 0, 0, 0}        a condition failed: nothing written
--   {4, 0, 0, 0, 0}        the marker is gone (the store lost its data):
--                          nothing written, the counters included
--
-- The order is the reference store's, after the marker: the counters are
-- worked out first (a hit past its max stops everything there); then every
-- condition is checked (failure run, challenge, device, checked record,
-- record version, claims) before
-- the first write; then everything is written. Each write does what the
-- part script for it does (hit.lua, replace_failures.lua, insert.lua or
-- replace.lua, device_insert.lua, contacts_commit.lua), so the records are
-- the same whichever way they were written. Versions and failure fields
-- compare as strings, exactly as in those scripts.
local a = 0
local function arg()
  a = a + 1
  return ARGV[a]
end
local k = 0
local function key()
  k = k + 1
  return KEYS[k]
end

if redis.call('EXISTS', key()) == 0 then
  return {4, 0, 0, 0, 0}
end

local nhits = tonumber(arg())
local has_failures = arg() == '1'
local challenge_mode = arg()
local has_device = arg() == '1'
local has_check = arg() == '1'
local has_record = arg() == '1'
local nclaim = tonumber(arg())
local nrelease = tonumber(arg())
local now_s = tonumber(arg())
local now_ns = tonumber(arg())

-- Writes hits 1..n as hit.lua would, one after the other.
local function charge(hits, n)
  for i = 1, n do
    local h = hits[i]
    if h.fresh then
      redis.call('HSET', h.key, 'count', 1, 'resets_s', h.end_s, 'resets_ns', h.end_ns)
      redis.call('PEXPIRE', h.key, h.ttl)
    else
      redis.call('HINCRBY', h.key, 'count', 1)
    end
  end
end

-- 1. The counters, worked out before anything is written. A counter hit
-- twice in one commit counts both.
local hits = {}
local latest = {}
for i = 1, nhits do
  local h = {key = key(), end_s = arg(), end_ns = arg(), ttl = arg(), max = tonumber(arg())}
  local cur = latest[h.key]
  if not cur then
    local stored = redis.call('HMGET', h.key, 'count', 'resets_s', 'resets_ns')
    if stored[1] and stored[2] and stored[3] then
      cur = {count = tonumber(stored[1]), s = tonumber(stored[2]), ns = tonumber(stored[3])}
    end
  end
  if cur and (cur.s > now_s or (cur.s == now_s and cur.ns > now_ns)) then
    h.fresh = false
    h.count, h.s, h.ns = cur.count + 1, cur.s, cur.ns
  else
    h.fresh = true
    h.count, h.s, h.ns = 1, tonumber(h.end_s), tonumber(h.end_ns)
  end
  latest[h.key] = {count = h.count, s = h.s, ns = h.ns}
  hits[i] = h
  if h.count > h.max then
    charge(hits, i)
    return {1, i - 1, h.count, h.s, h.ns}
  end
end

local conflict = {3, 0, 0, 0, 0}

-- 2. Every condition.
local failures
if has_failures then
  failures = {key = key(), had = arg(), old_n = arg(), old_s = arg(), old_ns = arg(),
    has = arg(), new_n = arg(), new_s = arg(), new_ns = arg()}
  local cur = redis.call('HMGET', failures.key, 'consecutive', 'last_s', 'last_ns')
  if failures.had == '1' then
    if cur[1] ~= failures.old_n or cur[2] ~= failures.old_s or cur[3] ~= failures.old_ns then
      return conflict
    end
  elseif cur[1] then
    return conflict
  end
end

local challenge
if challenge_mode ~= '' then
  challenge = {key = key(), expected = arg(), json = arg(), version = arg(),
    expires_ms = arg(), expires_s = arg(), expires_ns = arg(), ttl = arg(), max_ttl = arg()}
  if challenge_mode == 'insert' then
    if redis.call('EXISTS', challenge.key) == 1 then
      return conflict
    end
  else
    local stored = redis.call('HMGET', challenge.key, 'version', 'expires_ms')
    if stored[1] ~= challenge.expected then
      return conflict
    end
    challenge.old_ms = stored[2]
  end
end

local device
if has_device then
  device = {key = key(), set = key(), json = arg(), version = arg(), expires_ms = arg(),
    ttl = arg(), id = arg()}
  if redis.call('EXISTS', device.key) == 1 then
    return conflict
  end
end

if has_check then
  local stored = redis.call('HGET', key(), 'version')
  local expected = arg()
  if expected == '' then
    if stored then
      return conflict
    end
  elseif stored ~= expected then
    return conflict
  end
end

local record
if has_record then
  record = {key = key(), set = key(), expected = arg(), json = arg(), version = arg(),
    account = arg(), claim = {}, release = {}}
  local stored = redis.call('HGET', record.key, 'version')
  if record.expected == '' then
    if stored then
      return conflict
    end
  elseif stored ~= record.expected then
    return conflict
  end
  for i = 1, nclaim do
    record.claim[i] = {key = key(), name = arg()}
  end
  for i = 1, nrelease do
    record.release[i] = {key = key(), name = arg()}
  end
  for i = 1, nclaim do
    local owner = redis.call('GET', record.claim[i].key)
    if owner and owner ~= record.account then
      return {2, i - 1, 0, 0, 0}
    end
  end
end

-- 3. Every write.
charge(hits, nhits)

if failures then
  if failures.has == '1' then
    redis.call('HSET', failures.key, 'consecutive', failures.new_n,
      'last_s', failures.new_s, 'last_ns', failures.new_ns)
  else
    redis.call('DEL', failures.key)
  end
end

if challenge then
  local c = challenge
  redis.call('HSET', c.key, 'record', c.json, 'version', c.version,
    'expires_ms', c.expires_ms, 'expires_s', c.expires_s, 'expires_ns', c.expires_ns)
  if challenge_mode == 'insert' then
    redis.call('PEXPIRE', c.key, c.ttl)
  elseif c.old_ms and c.old_ms ~= c.expires_ms then
    -- As replace.lua: the deadline moves as far as expires_at moved.
    local pttl = redis.call('PTTL', c.key)
    if pttl > 0 then
      local ttl = pttl + (tonumber(c.expires_ms) - tonumber(c.old_ms))
      if ttl < 1 then
        ttl = 1
      end
      local max = tonumber(c.max_ttl)
      if ttl > max then
        ttl = max
      end
      redis.call('PEXPIRE', c.key, string.format('%d', ttl))
    end
  end
end

if device then
  redis.call('HSET', device.key, 'record', device.json, 'version', device.version,
    'expires_ms', device.expires_ms)
  redis.call('PEXPIRE', device.key, device.ttl)
  redis.call('SADD', device.set, device.id)
  if redis.call('PTTL', device.set) < tonumber(device.ttl) then
    redis.call('PEXPIRE', device.set, device.ttl)
  end
end

if record then
  for _, r in ipairs(record.release) do
    if redis.call('GET', r.key) == record.account then
      redis.call('DEL', r.key)
      redis.call('SREM', record.set, r.name)
    end
  end
  for _, c in ipairs(record.claim) do
    redis.call('SET', c.key, record.account)
    redis.call('SADD', record.set, c.name)
  end
  redis.call('HSET', record.key, 'record', record.json, 'version', record.version)
end

return {0, 0, 0, 0, 0}
