//! The Lua scripts the backend runs on the server, each atomic there.

/// Compare-and-swap: KEYS[1], ARGV = expected, new value, PX milliseconds (0 = none).
pub(super) const CAS_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == false or current ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"#;
