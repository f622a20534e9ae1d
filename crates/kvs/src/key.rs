//! Key and namespace rules, and the encodings every backend shares.
//!
//! This is the only module that joins a namespace and a key. Backends that
//! keep many namespaces in one keyspace (Redis, DynamoDB, a shared SQLite
//! table) use [`encode_key`]; backends that keep one directory per namespace
//! (LevelDB) use [`namespace_dir_name`].
//!
//! # The shared-keyspace form
//!
//! ```text
//! encode_key(namespace, key) = escape(namespace) ":" key
//! escape: "\" -> "\\", ":" -> "\:", every other character unchanged
//! ```
//!
//! So namespace `sessions` and key `user:1` become `sessions:user:1`, which
//! is also what `redis-cli GET` takes. The properties the backends rely on,
//! each property-tested below:
//!
//! 1. **Injective.** The escaped namespace contains no unescaped `:`, so the
//!    first unescaped `:` ends it and [`decode_key`] recovers both parts:
//!    `a` + `b:c` is `a:b:c`, `a:b` + `c` is `a\:b:c`.
//! 2. **Namespaces never overlap.** No encoded key of one namespace starts
//!    with [`namespace_prefix`] of another, so a prefix scan of one namespace
//!    never sees another's keys.
//! 3. **Order and prefixes are kept.** Within a namespace the key is appended
//!    verbatim, so `k1 < k2` (byte order) iff `encode_key(ns, k1) <
//!    encode_key(ns, k2)`, and `k` starts with `p` iff `encode_key(ns, k)`
//!    starts with `encode_key(ns, p)` (with `p` possibly empty). A prefix or
//!    range scan on encoded keys is the same scan on keys.

use crate::{Error, Result};
use sha2::{Digest, Sha256};

/// The longest key, in bytes (UTF-8), that every backend accepts.
pub const MAX_KEY_LEN: usize = 1024;

/// The longest namespace, in bytes (UTF-8).
pub const MAX_NAMESPACE_LEN: usize = 255;

/// The namespace used when the configured one is empty.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Separates the escaped namespace from the key in [`encode_key`].
const SEPARATOR: char = ':';
/// Escapes [`SEPARATOR`] and itself inside a namespace.
const ESCAPE: char = '\\';

/// Checks that `key` is a valid key: non-empty and at most [`MAX_KEY_LEN`] bytes.
///
/// ```
/// assert!(kvs::raw::validate_key("user:1").is_ok());
/// assert!(matches!(kvs::raw::validate_key(""), Err(kvs::Error::InvalidKey { .. })));
/// ```
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            key: String::new(),
            reason: "keys must not be empty".into(),
        });
    }
    check_key_len(key, "key")
}

/// Checks that `prefix` can be a key prefix: at most [`MAX_KEY_LEN`] bytes
/// (`""`, meaning every key, is allowed).
pub fn validate_prefix(prefix: &str) -> Result<()> {
    check_key_len(prefix, "prefix")
}

fn check_key_len(key: &str, what: &str) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: format!(
                "{what} is {} bytes; the limit is {MAX_KEY_LEN} bytes",
                key.len()
            ),
        });
    }
    Ok(())
}

/// Validates a namespace and applies the default: `""` becomes [`DEFAULT_NAMESPACE`].
///
/// Any UTF-8 string of at most [`MAX_NAMESPACE_LEN`] bytes is a namespace;
/// characters such as `/`, `.` or `:` have no special meaning.
///
/// ```
/// assert_eq!(kvs::raw::normalize_namespace("").unwrap(), "default");
/// assert_eq!(kvs::raw::normalize_namespace("../x").unwrap(), "../x");
/// ```
pub fn normalize_namespace(namespace: &str) -> Result<String> {
    if namespace.is_empty() {
        return Ok(DEFAULT_NAMESPACE.to_owned());
    }
    if namespace.len() > MAX_NAMESPACE_LEN {
        return Err(Error::InvalidNamespace {
            namespace: namespace.to_owned(),
            reason: format!(
                "namespace is {} bytes; the limit is {MAX_NAMESPACE_LEN} bytes",
                namespace.len()
            ),
        });
    }
    Ok(namespace.to_owned())
}

/// The escaped form of a namespace: `\` becomes `\\` and `:` becomes `\:`.
pub fn escape_namespace(namespace: &str) -> String {
    let mut out = String::with_capacity(namespace.len() + 2);
    for c in namespace.chars() {
        if c == SEPARATOR || c == ESCAPE {
            out.push(ESCAPE);
        }
        out.push(c);
    }
    out
}

/// The prefix shared by every encoded key of `namespace`: `escape(namespace) ":"`.
///
/// ```
/// assert_eq!(kvs::raw::namespace_prefix("a:b"), "a\\:b:");
/// ```
pub fn namespace_prefix(namespace: &str) -> String {
    let mut out = escape_namespace(namespace);
    out.push(SEPARATOR);
    out
}

/// Joins a namespace and a key into one string, injectively (see the module docs).
///
/// ```
/// use kvs::raw::encode_key;
///
/// assert_eq!(encode_key("sessions", "user:1"), "sessions:user:1");
/// assert_ne!(encode_key("a", "b:c"), encode_key("a:b", "c"));
/// ```
pub fn encode_key(namespace: &str, key: &str) -> String {
    let mut out = namespace_prefix(namespace);
    out.push_str(key);
    out
}

/// Splits an encoded key back into `(namespace, key)`.
///
/// Returns `None` for a string that [`encode_key`] cannot produce (no
/// unescaped `:`, or a `\` followed by anything but `\` or `:`).
///
/// ```
/// use kvs::raw::{decode_key, encode_key};
///
/// let encoded = encode_key("a:b", "c");
/// assert_eq!(decode_key(&encoded), Some(("a:b".to_owned(), "c".to_owned())));
/// ```
pub fn decode_key(encoded: &str) -> Option<(String, String)> {
    let mut namespace = String::new();
    let mut chars = encoded.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ESCAPE => match chars.next() {
                Some((_, e @ (ESCAPE | SEPARATOR))) => namespace.push(e),
                _ => return None,
            },
            SEPARATOR => {
                let key = &encoded[i + SEPARATOR.len_utf8()..];
                return Some((namespace, key.to_owned()));
            }
            other => namespace.push(other),
        }
    }
    None
}

/// The smallest string greater than every string that starts with `prefix`,
/// or `None` if there is none (the prefix is empty or all `0xFF` bytes,
/// which UTF-8 never contains, so in practice only for `""`).
///
/// Backends turn "starts with `prefix`" into the range
/// `prefix <= k < successor(prefix)`, which an index answers without
/// wildcard matching (`LIKE 'a_%'` would also match `"ab"`).
///
/// ```
/// assert_eq!(kvs::raw::prefix_successor(b"ab"), Some(b"ac".to_vec()));
/// assert_eq!(kvs::raw::prefix_successor(b""), None);
/// ```
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest string greater than every string that starts with `prefix`,
/// or `None` if there is none (`prefix` is empty or all `U+10FFFF`).
///
/// The text form of [`prefix_successor`], for engines that compare keys as
/// text (SQLite's `TEXT` columns): the last character is incremented instead
/// of the last byte, so the bound is still valid UTF-8. UTF-8 orders like
/// code points, so `prefix <= k < successor` is exactly "k starts with prefix".
///
/// ```
/// assert_eq!(kvs::raw::prefix_successor_str("ab").as_deref(), Some("ac"));
/// assert_eq!(kvs::raw::prefix_successor_str("a\u{7f}").as_deref(), Some("a\u{80}"));
/// assert_eq!(kvs::raw::prefix_successor_str("\u{d7ff}").as_deref(), Some("\u{e000}"));
/// assert_eq!(kvs::raw::prefix_successor_str(""), None);
/// ```
pub fn prefix_successor_str(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{d7ff}' => Some('\u{e000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Longest directory name [`namespace_dir_name`] produces before it switches
/// to the hashed form; well under the 255-byte file-name limit of common file
/// systems.
const MAX_DIR_NAME_LEN: usize = 200;
/// How much of the escaped namespace the hashed form keeps, for humans.
const HASHED_DIR_NAME_KEEP: usize = 120;

/// A directory name for `namespace` that is safe on every common file system.
///
/// The name is `ns-` followed by the namespace with every byte outside
/// `[a-z0-9_-]` written as `%XX` (upper-case hex). Therefore:
///
/// - it never contains `/`, `\`, `.` or `:` and is never `.` or `..`, so
///   joined to a parent directory it cannot escape it;
/// - different namespaces get different names, even on a case-insensitive
///   file system: upper-case letters only occur as hex digits after `%`,
///   where lower-case ones never do (`A` is `%41`, `a` is `a`);
/// - it never is a reserved Windows device name (`con`, `nul`, ...), thanks
///   to the `ns-` prefix.
///
/// A namespace whose escaped form exceeds 200 bytes is cut to 120 bytes and
/// followed by `~` and the SHA-256 of the whole namespace in hex. `~` never
/// occurs in the short form, so a hashed name never equals a short one; two
/// hashed names are equal only if SHA-256 collides.
///
/// ```
/// use kvs::raw::namespace_dir_name;
///
/// assert_eq!(namespace_dir_name("sessions"), "ns-sessions");
/// assert_eq!(namespace_dir_name("../x"), "ns-%2E%2E%2Fx");
/// assert_ne!(namespace_dir_name("a.b"), namespace_dir_name("a-b"));
/// ```
pub fn namespace_dir_name(namespace: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(3 + namespace.len());
    out.push_str("ns-");
    for &b in namespace.as_bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    if out.len() <= MAX_DIR_NAME_LEN {
        return out;
    }
    // Cut at a character boundary that is not inside a `%XX` escape, so the
    // kept part is still readable.
    let mut cut = HASHED_DIR_NAME_KEEP;
    while out.as_bytes()[cut - 1] == b'%' || out.as_bytes()[cut - 2] == b'%' {
        cut -= 1;
    }
    out.truncate(cut);
    out.push('~');
    for b in Sha256::digest(namespace.as_bytes()) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0F)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Strings rich in the characters the encodings treat specially.
    fn tricky() -> impl Strategy<Value = String> {
        prop_oneof!["[a:\\\\b./%~A-]{0,12}", any::<String>(), "\\PC{0,8}",]
    }

    fn namespace() -> impl Strategy<Value = String> {
        tricky().prop_map(|s| {
            let mut s = s;
            while s.len() > MAX_NAMESPACE_LEN {
                s.pop();
            }
            s
        })
    }

    #[test]
    fn seed_collisions_are_gone() {
        assert_ne!(encode_key("a", "b:c"), encode_key("a:b", "c"));
        assert_ne!(encode_key("a\\", ":c"), encode_key("a", "\\:c"));
        let names: Vec<_> = ["a.b", "a-b", "a/b", "a_b", "A.b", "a%2Eb"]
            .iter()
            .map(|ns| namespace_dir_name(ns))
            .collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a.to_lowercase(), b.to_lowercase());
            }
        }
    }

    #[test]
    fn dir_names_stay_inside_their_parent() {
        for ns in [
            "..",
            ".",
            "../x",
            "/etc",
            "a/../../b",
            "\\..\\x",
            "con",
            "NUL",
        ] {
            let name = namespace_dir_name(ns);
            assert!(!name.contains(['/', '\\', '.', ':']), "{ns:?} -> {name}");
            let joined = std::path::Path::new("/data").join(&name);
            assert_eq!(joined.parent(), Some(std::path::Path::new("/data")));
        }
    }

    #[test]
    fn long_namespaces_get_hashed_names_within_limits() {
        let a = "é".repeat(127);
        let b = format!("{}x", "é".repeat(127));
        let (na, nb) = (namespace_dir_name(&a), namespace_dir_name(&b));
        assert!(na.len() <= MAX_DIR_NAME_LEN && nb.len() <= MAX_DIR_NAME_LEN);
        assert!(na.contains('~'));
        assert_ne!(na, nb);
    }

    #[test]
    fn validation() {
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(matches!(
            validate_key(&"k".repeat(MAX_KEY_LEN + 1)),
            Err(Error::InvalidKey { .. })
        ));
        assert!(validate_prefix("").is_ok());
        assert!(normalize_namespace(&"n".repeat(MAX_NAMESPACE_LEN)).is_ok());
        assert!(matches!(
            normalize_namespace(&"n".repeat(MAX_NAMESPACE_LEN + 1)),
            Err(Error::InvalidNamespace { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decode_inverts_encode(ns in namespace(), key in tricky()) {
            let encoded = encode_key(&ns, &key);
            prop_assert_eq!(decode_key(&encoded), Some((ns, key)));
        }

        #[test]
        fn distinct_pairs_encode_differently(
            a in (namespace(), tricky()), b in (namespace(), tricky())
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(encode_key(&a.0, &a.1), encode_key(&b.0, &b.1));
        }

        #[test]
        fn namespaces_never_overlap(ns1 in namespace(), ns2 in namespace(), key in tricky()) {
            prop_assume!(ns1 != ns2);
            prop_assert!(!encode_key(&ns1, &key).starts_with(&namespace_prefix(&ns2)));
        }

        #[test]
        fn order_is_kept(ns in namespace(), k1 in tricky(), k2 in tricky()) {
            prop_assert_eq!(
                k1.as_bytes().cmp(k2.as_bytes()),
                encode_key(&ns, &k1).as_bytes().cmp(encode_key(&ns, &k2).as_bytes())
            );
        }

        #[test]
        fn prefixes_are_kept(ns in namespace(), key in tricky(), prefix in tricky()) {
            prop_assert_eq!(
                key.starts_with(&prefix),
                encode_key(&ns, &key).starts_with(&encode_key(&ns, &prefix))
            );
        }

        #[test]
        fn decode_never_panics(s in any::<String>()) {
            if let Some((ns, key)) = decode_key(&s) {
                prop_assert_eq!(encode_key(&ns, &key), s);
            }
        }

        #[test]
        fn successor_bounds_the_prefix(prefix in any::<Vec<u8>>(), rest in any::<Vec<u8>>()) {
            let mut key = prefix.clone();
            key.extend_from_slice(&rest);
            if let Some(end) = prefix_successor(&prefix) {
                prop_assert!(key < end);
                prop_assert!(prefix < end);
            }
        }

        #[test]
        fn text_successor_bounds_exactly_the_prefix(prefix in "\\PC{0,4}", key in "\\PC{0,6}") {
            if let Some(end) = prefix_successor_str(&prefix) {
                let in_range = key.as_str() >= prefix.as_str() && key.as_str() < end.as_str();
                prop_assert_eq!(in_range, key.starts_with(&prefix));
            }
        }

        #[test]
        fn byte_successor_bounds_exactly_the_prefix(prefix in any::<Vec<u8>>(), key in any::<Vec<u8>>()) {
            if let Some(end) = prefix_successor(&prefix) {
                let in_range = key >= prefix && key < end;
                prop_assert_eq!(in_range, key.starts_with(&prefix));
            }
        }

        #[test]
        fn dir_names_are_injective_even_ignoring_case(a in namespace(), b in namespace()) {
            prop_assume!(a != b);
            let (na, nb) = (namespace_dir_name(&a), namespace_dir_name(&b));
            prop_assert_ne!(na.to_ascii_lowercase(), nb.to_ascii_lowercase());
        }

        #[test]
        fn dir_names_are_safe(ns in namespace()) {
            let name = namespace_dir_name(&ns);
            prop_assert!(name.len() <= MAX_DIR_NAME_LEN);
            prop_assert!(name.starts_with("ns-"));
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_%~".contains(&b)));
        }
    }
}
