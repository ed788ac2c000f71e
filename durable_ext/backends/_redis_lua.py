"""Lua scripts of the Redis store; each runs atomically in one round trip.

Key layout under the store prefix ``P`` (``dx:`` by default; ``ID`` is the execution id)::

    P x:ID:h        HASH    rev, st (status), doc (header JSON)
    P x:ID:o        HASH    op_id -> operation record JSON
    P x:ID:t        ZSET    op_id scored by its touched sequence (the delta query)
    P x:ID:e        LIST    event JSON; event id = list position + 1
    P x:ID:d        HASH    due key -> "<kind>|<due entry JSON>"
    P due           ZSET    "ID|key" scored by due_ms (every due entry)
    P due:<kind>    ZSET    the same, per kind (claims ask for a few kinds)
    P n:<fn>:<name> STRING  the ARN holding that execution name (SET NX semantics)
    P l:a | l:f:<fn> | l:s:<status> | l:fs:<fn>:<status>
                    ZSET    score 0, member "<inverted start_ms>|<arn>": lexical order is
                            newest first, then ARN, so listings page with ZRANGEBYLEX

Keys are derived inside the scripts from ``P`` and the ids, which ties the store to a
single Redis primary (standalone, Sentinel, or a non-cluster managed service).
"""

from __future__ import annotations

__all__ = ["APPLY", "DELETE", "DUE", "TOUCHED"]

# ARGV: P, id, mode ('create'|'commit'), expected_rev, rev, doc, status, fn, name, arn,
# list_member, first_event, ttl_ms, terminal ('1'|'0'), commit_id,
# n_ops, (op_id, touched, json)*, n_events, (json)*, n_set, (key, kind, due_ms, json)*,
# n_clear, (key)*
# Returns {'ok'} | {'ok', 'replayed'} | {'exists', arn} | {'conflict', found_rev}
#       | {'notfound'} | {'badevent', count}
APPLY = r"""
local P, id, mode = ARGV[1], ARGV[2], ARGV[3]
local expected, rev, doc, status = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local fn, name, arn, member = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local first_event, ttl, terminal = tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14] == '1'
local cid = ARGV[15]
local X = P .. 'x:' .. id
local h, ko, kt, ke, kd = X .. ':h', X .. ':o', X .. ':t', X .. ':e', X .. ':d'
local namekey = P .. 'n:' .. fn .. ':' .. name
local old_status = nil
if mode == 'create' then
  local holder = redis.call('GET', namekey)
  if holder then return {'exists', holder} end
  if redis.call('EXISTS', h) == 1 then return {'conflict', 'arn'} end
else
  local cur = redis.call('HMGET', h, 'rev', 'st', 'cid')
  if not cur[1] then return {'notfound'} end
  local found = tonumber(cur[1])
  if found ~= expected then
    -- a retried request whose first attempt was applied (same commit id): report
    -- success, change nothing; any other writer's batch is a conflict
    if found == rev and cur[3] == cid then return {'ok', 'replayed'} end
    return {'conflict', cur[1]}
  end
  old_status = cur[2]
end
local i = 16
local n_ops = tonumber(ARGV[i]); i = i + 1
local n_events = tonumber(ARGV[i + 3 * n_ops])
if n_events > 0 then
  local count = redis.call('LLEN', ke)
  if count + 1 ~= first_event then return {'badevent', tostring(count)} end
end
if mode == 'create' then redis.call('SET', namekey, arn) end
redis.call('HSET', h, 'rev', rev, 'st', status, 'doc', doc, 'cid', cid)
for _ = 1, n_ops do
  redis.call('HSET', ko, ARGV[i], ARGV[i + 2])
  redis.call('ZADD', kt, ARGV[i + 1], ARGV[i])
  i = i + 3
end
i = i + 1
for _ = 1, n_events do
  redis.call('RPUSH', ke, ARGV[i])
  i = i + 1
end
local function drop(key)
  local old = redis.call('HGET', kd, key)
  if old then
    local kind = string.sub(old, 1, string.find(old, '|', 1, true) - 1)
    redis.call('ZREM', P .. 'due:' .. kind, id .. '|' .. key)
    redis.call('ZREM', P .. 'due', id .. '|' .. key)
    redis.call('HDEL', kd, key)
  end
end
local n_set = tonumber(ARGV[i]); i = i + 1
local set_at = i
i = i + 4 * n_set
local n_clear = tonumber(ARGV[i]); i = i + 1
for _ = 1, n_clear do
  drop(ARGV[i])
  i = i + 1
end
for j = 0, n_set - 1 do
  local key, kind, due_ms, json = ARGV[set_at + 4 * j], ARGV[set_at + 4 * j + 1],
    ARGV[set_at + 4 * j + 2], ARGV[set_at + 4 * j + 3]
  drop(key)
  redis.call('HSET', kd, key, kind .. '|' .. json)
  redis.call('ZADD', P .. 'due', due_ms, id .. '|' .. key)
  redis.call('ZADD', P .. 'due:' .. kind, due_ms, id .. '|' .. key)
end
if old_status ~= status then
  if old_status then
    redis.call('ZREM', P .. 'l:s:' .. old_status, member)
    redis.call('ZREM', P .. 'l:fs:' .. fn .. ':' .. old_status, member)
  else
    redis.call('ZADD', P .. 'l:a', 0, member)
    redis.call('ZADD', P .. 'l:f:' .. fn, 0, member)
  end
  redis.call('ZADD', P .. 'l:s:' .. status, 0, member)
  redis.call('ZADD', P .. 'l:fs:' .. fn .. ':' .. status, 0, member)
end
if terminal and ttl > 0 then
  for _, k in ipairs({h, ko, kt, ke, kd, namekey}) do
    if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, ttl) end
  end
end
return {'ok'}
"""

# ARGV: P, until ('+inf' or a number), limit (0 = all), kind* (none = every kind)
# Returns a flat list: member, score, stored value, ... earliest first. With a limit, every
# entry tied with the last one's due time is included too, so the caller can order ties
# exactly and cut. Entries of expired executions are pruned from the index.
DUE = r"""
local P, upto, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local zsets = {}
if #ARGV > 3 then
  for j = 4, #ARGV do zsets[#zsets + 1] = P .. 'due:' .. ARGV[j] end
else
  zsets[1] = P .. 'due'
end
local out, stale = {}, {}
for _, z in ipairs(zsets) do
  local rows
  if limit > 0 then
    rows = redis.call('ZRANGEBYSCORE', z, '-inf', upto, 'WITHSCORES', 'LIMIT', 0, limit)
    if #rows == 2 * limit then
      local last = rows[#rows]
      local ties = redis.call('ZRANGEBYSCORE', z, last, last)
      local have = {}
      for j = 1, #rows, 2 do have[rows[j]] = true end
      for _, m in ipairs(ties) do
        if not have[m] then rows[#rows + 1] = m; rows[#rows + 1] = last end
      end
    end
  else
    rows = redis.call('ZRANGEBYSCORE', z, '-inf', upto, 'WITHSCORES')
  end
  for j = 1, #rows, 2 do
    local m = rows[j]
    local sep = string.find(m, '|', 1, true)
    local value = redis.call('HGET', P .. 'x:' .. string.sub(m, 1, sep - 1) .. ':d',
                             string.sub(m, sep + 1))
    if value then
      out[#out + 1] = m; out[#out + 1] = rows[j + 1]; out[#out + 1] = value
    else
      stale[#stale + 1] = {z, m}
    end
  end
end
for _, s in ipairs(stale) do redis.call('ZREM', s[1], s[2]) end
return out
"""

# ARGV: P, id, seq. Returns {exists (0|1), json...}: records touched after seq.
TOUCHED = r"""
local X = ARGV[1] .. 'x:' .. ARGV[2]
if redis.call('EXISTS', X .. ':h') == 0 then return {0} end
local ids = redis.call('ZRANGEBYSCORE', X .. ':t', '(' .. ARGV[3], '+inf')
local out = {1}
-- HMGET in chunks: unpack() of a very long list would overflow the Lua stack
for s = 1, #ids, 1000 do
  local recs = redis.call('HMGET', X .. ':o', unpack(ids, s, math.min(s + 999, #ids)))
  for _, r in ipairs(recs) do if r then out[#out + 1] = r end end
end
return out
"""

# ARGV: P, id, arn. Removes the execution's keys, due entries, listing entries and name
# claim (if it still names arn). Returns 1 if the execution was there, else 0.
DELETE = r"""
local P, id, arn = ARGV[1], ARGV[2], ARGV[3]
local X = P .. 'x:' .. id
local h, kd = X .. ':h', X .. ':d'
local doc = redis.call('HGET', h, 'doc')
if not doc then return 0 end
local head = cjson.decode(doc)
if head['arn'] ~= arn then return 0 end
local fn, name, status = head['function_name'], head['name'], redis.call('HGET', h, 'st')
local due = redis.call('HGETALL', kd)
for j = 1, #due, 2 do
  local kind = string.sub(due[j + 1], 1, string.find(due[j + 1], '|', 1, true) - 1)
  redis.call('ZREM', P .. 'due:' .. kind, id .. '|' .. due[j])
  redis.call('ZREM', P .. 'due', id .. '|' .. due[j])
end
local member = ARGV[4]
for _, z in ipairs({'l:a', 'l:f:' .. fn, 'l:s:' .. status, 'l:fs:' .. fn .. ':' .. status}) do
  redis.call('ZREM', P .. z, member)
end
local namekey = P .. 'n:' .. fn .. ':' .. name
if redis.call('GET', namekey) == arn then redis.call('DEL', namekey) end
redis.call('DEL', X .. ':o', X .. ':t', X .. ':e', kd, h)
return 1
"""
