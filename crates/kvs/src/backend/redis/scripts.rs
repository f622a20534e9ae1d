//! The Lua scripts the backend runs on the server, each atomic there.
//!
//! The scripts of the ordered index (see `index.rs`) share one calling
//! convention: `KEYS[1]` is the index (a sorted set of the namespace's
//! keys, every score 0), `KEYS[2]` the deadlines (the same members, scored
//! by the millisecond their key expires, by the server's clock), any
//! further `KEYS` the data keys written; `ARGV[1]` is the namespace's key
//! prefix, from which a script names the data key of a member it did not
//! get in `KEYS` (the same hash slot on a cluster: the prefix holds the
//! hash tag).

use redis::Script;
use std::sync::LazyLock;

/// Compare-and-swap: KEYS[1], ARGV = expected, new value, PX milliseconds (0 = none).
pub(super) const CAS_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == false or current ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"#;

/// How many due members a script that gives a key a deadline prunes on
/// its way (see `prune`). Each key expires once per such write, so pruning
/// two per write outruns expiry while writes go on.
pub(super) const PRUNE_PER_WRITE: usize = 2;

/// How many due members one listing script prunes before it answers; with
/// more due, it answers "again" and the client calls it again.
pub(super) const PRUNE_PER_LISTING: usize = 1000;

/// Shared by every index script: the server's time, keeping a member's
/// entries, and pruning the members whose deadline has passed.
///
/// Lua numbers are doubles: a TTL or a counter is handed to Redis as the
/// string it came in (`ARGV`), and only scores, which Redis keeps as
/// doubles anyway, are computed in Lua.
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- SET k to v; pxs is the TTL in milliseconds as it came ('0': none), nx
-- asks for NX. Returns SET's reply (false when NX refused).
local function put(k, v, pxs, nx)
  local args = {'SET', k, v}
  if pxs ~= '0' then
    args[#args + 1] = 'PX'
    args[#args + 1] = pxs
  end
  if nx then args[#args + 1] = 'NX' end
  return redis.call(unpack(args))
end

-- Member m is (again) a key; px > 0 is its TTL in milliseconds.
local function track(m, px)
  redis.call('ZADD', KEYS[1], 0, m)
  if px > 0 then redis.call('ZADD', KEYS[2], NOW + px, m)
  else redis.call('ZREM', KEYS[2], m) end
end

-- Settles up to `limit` members whose deadline has passed: a member whose
-- key is gone leaves both sets; one whose key still lives (its TTL moved
-- without kvs) gets the deadline the server holds. Every due member it
-- reads stops being due, so repeated calls end. Returns how many it read.
local function prune(limit)
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', NOW, 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    local p = redis.call('PTTL', ARGV[1] .. m)
    if p == -2 then
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZREM', KEYS[2], m)
    elseif p == -1 then
      redis.call('ZREM', KEYS[2], m)
    else
      redis.call('ZADD', KEYS[2], NOW + p, m)
    end
  end
  return #due
end
"#;

/// The scripts of the ordered index, each loaded once (by SHA, `EVALSHA`
/// falling back to `EVAL`, which the `redis` crate does).
pub(super) struct IndexScripts {
    /// KEYS[3] = the key; ARGV = prefix, member, value, PX ms (0 = none),
    /// `1` for `NX`. Returns 1 if written.
    pub(super) set: Script,
    /// KEYS[3..] = the keys; ARGV = prefix, PX ms, then member and value
    /// for each key, in order (a repeated key: the last write wins).
    pub(super) set_many: Script,
    /// KEYS[3] = the key; ARGV = prefix, member, expected, new, PX ms.
    /// Returns 1 if swapped.
    pub(super) compare_and_swap: Script,
    /// KEYS[3] = the key; ARGV = prefix, member, delta. Returns the new
    /// value, or Redis's error for a non-integer or an overflow.
    pub(super) increment: Script,
    /// KEYS[3] = the key; ARGV = prefix, member, PX ms (0 = persist).
    /// Returns 1 if the key exists.
    pub(super) expire: Script,
    /// KEYS[3] = the key; ARGV = prefix, member, PX ms (0 = persist).
    /// Returns the value, or nil.
    pub(super) get_and_touch: Script,
    /// ARGV = prefix, min, max (`ZRANGEBYLEX` bounds), limit, `count` or
    /// `keys`. Returns `{0}` when it pruned its fill and must be called
    /// again, else `{1, count}` or `{1, {keys…}}`.
    pub(super) list: Script,
    /// ARGV = prefix, min, max, batch. Deletes up to `batch` of the keys in
    /// range; returns `{members read, live keys deleted}`.
    pub(super) delete_range: Script,
    /// KEYS[3] = the state hash; ARGV = prefix, the next SCAN cursor, then
    /// the members this SCAN step found. Adds those whose key still lives,
    /// and records the cursor (`0`: the index is ready).
    pub(super) build_step: Script,
}

pub(super) static INDEX: LazyLock<IndexScripts> = LazyLock::new(|| {
    let script = |body: &str| {
        let body = body
            .replace("PRUNE_PER_WRITE", &PRUNE_PER_WRITE.to_string())
            .replace("PRUNE_PER_LISTING", &PRUNE_PER_LISTING.to_string());
        Script::new(&format!("{PRELUDE}{body}"))
    };
    IndexScripts {
        set: script(
            r#"
prune(PRUNE_PER_WRITE)
if not put(KEYS[3], ARGV[3], ARGV[4], ARGV[5] == '1') then return 0 end
track(ARGV[2], tonumber(ARGV[4]))
return 1
"#,
        ),
        set_many: script(
            r#"
prune(PRUNE_PER_WRITE)
local px = tonumber(ARGV[2])
for i = 3, #KEYS do
  put(KEYS[i], ARGV[2 * i - 2], ARGV[2], false)
  track(ARGV[2 * i - 3], px)
end
return 1
"#,
        ),
        compare_and_swap: script(
            r#"
prune(PRUNE_PER_WRITE)
local current = redis.call('GET', KEYS[3])
if current == false or current ~= ARGV[3] then return 0 end
put(KEYS[3], ARGV[4], ARGV[5], false)
track(ARGV[2], tonumber(ARGV[5]))
return 1
"#,
        ),
        increment: script(
            r#"
prune(PRUNE_PER_WRITE)
local n = redis.pcall('INCRBY', KEYS[3], ARGV[3])
if type(n) == 'table' and n.err then return n end
-- A new key has no TTL; an old one keeps its TTL, and its deadline.
redis.call('ZADD', KEYS[1], 0, ARGV[2])
-- Lua holds numbers as doubles: answer the exact value as Redis keeps it.
return redis.call('GET', KEYS[3])
"#,
        ),
        expire: script(
            r#"
prune(PRUNE_PER_WRITE)
local px = tonumber(ARGV[3])
if px > 0 then
  if redis.call('PEXPIRE', KEYS[3], ARGV[3]) == 0 then return 0 end
  redis.call('ZADD', KEYS[2], NOW + px, ARGV[2])
  return 1
end
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
redis.call('PERSIST', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"#,
        ),
        get_and_touch: script(
            r#"
prune(PRUNE_PER_WRITE)
local px = tonumber(ARGV[3])
local v
if px > 0 then v = redis.call('GETEX', KEYS[3], 'PX', ARGV[3])
else v = redis.call('GETEX', KEYS[3], 'PERSIST') end
if v then
  if px > 0 then redis.call('ZADD', KEYS[2], NOW + px, ARGV[2])
  else redis.call('ZREM', KEYS[2], ARGV[2]) end
end
return v
"#,
        ),
        list: script(
            r#"
if prune(PRUNE_PER_LISTING) == PRUNE_PER_LISTING then return {0} end
if ARGV[5] == 'count' then
  return {1, redis.call('ZLEXCOUNT', KEYS[1], ARGV[2], ARGV[3])}
end
return {1, redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])}
"#,
        ),
        delete_range: script(
            r#"
local ms = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
local n = 0
for _, m in ipairs(ms) do
  n = n + redis.call('DEL', ARGV[1] .. m)
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZREM', KEYS[2], m)
end
return {#ms, n}
"#,
        ),
        build_step: script(
            r#"
for i = 3, #ARGV do
  local m = ARGV[i]
  local p = redis.call('PTTL', ARGV[1] .. m)
  if p ~= -2 then
    redis.call('ZADD', KEYS[1], 0, m)
    if p > 0 then redis.call('ZADD', KEYS[2], NOW + p, m) end
  end
end
if ARGV[2] == '0' then
  redis.call('HSET', KEYS[3], 'state', 'ready')
  redis.call('HDEL', KEYS[3], 'cursor')
else
  redis.call('HSET', KEYS[3], 'cursor', ARGV[2])
end
return 1
"#,
        ),
    }
});
