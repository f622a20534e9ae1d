//! The cases, one `pub async fn` per behaviour of the [`Store`] contract.
//!
//! Each case opens its own stores through the [`Harness`], starts from an
//! empty namespace, and panics with a message naming the backend behaviour
//! that broke.

use super::{model, Harness};
use crate::key::{MAX_KEY_LEN, MAX_NAMESPACE_LEN};
use crate::{Document, DocumentStore, Error, Result, Store};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// A TTL that no check made right after a `set` can outlive, even on a
/// slow machine, and the time to advance to be sure it has passed.
const SHORT_TTL: Duration = Duration::from_secs(2);
const PAST_SHORT_TTL: Duration = Duration::from_millis(3_100);
const LONG_TTL: Duration = Duration::from_secs(3_600);

async fn open(h: &dyn Harness, namespace: &str) -> Arc<dyn Store> {
    match h.open(namespace).await {
        Ok(store) => store,
        Err(e) => panic!("opening namespace {namespace:?} failed: {e}"),
    }
}

/// Unwraps a result, naming the operation in the panic.
#[track_caller]
fn ok<T>(what: &str, result: Result<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

async fn get(store: &dyn Store, key: &str) -> Option<Vec<u8>> {
    match store.get(key).await {
        Ok(v) => Some(v.to_vec()),
        Err(Error::NotFound) => None,
        Err(e) => panic!("get({key:?}) failed: {e}"),
    }
}

async fn set(store: &dyn Store, key: &str, value: &[u8], ttl: Option<Duration>) {
    ok(&format!("set({key:?})"), store.set(key, value, ttl).await);
}

async fn list(store: &dyn Store, prefix: &str) -> Vec<String> {
    ok(&format!("list({prefix:?})"), store.list(prefix).await)
}

async fn count(store: &dyn Store, prefix: &str) -> usize {
    ok(&format!("count({prefix:?})"), store.count(prefix).await)
}

/// Asserts that `list(prefix)` is `want` and `count(prefix)` its length.
async fn assert_listing(store: &dyn Store, prefix: &str, want: &[&str]) {
    assert_eq!(list(store, prefix).await, want, "list({prefix:?})");
    assert_eq!(count(store, prefix).await, want.len(), "count({prefix:?})");
}

/// `set` then `get` returns the value; `set` again replaces it.
pub async fn set_get_overwrite(h: &dyn Harness) {
    let s = open(h, "set-get").await;
    set(&*s, "k", b"one", None).await;
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"one"[..]));
    set(&*s, "k", b"two", None).await;
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"two"[..]));
    assert_listing(&*s, "", &["k"]).await;
}

/// A missing key is `NotFound` for `get`, `false` for `exists`, and deleting it is `Ok`.
pub async fn missing_keys(h: &dyn Harness) {
    let s = open(h, "missing").await;
    assert!(
        matches!(s.get("nope").await, Err(Error::NotFound)),
        "get of a missing key"
    );
    assert!(!ok("exists", s.exists("nope").await));
    ok("delete of a missing key", s.delete("nope").await);
    set(&*s, "k", b"v", None).await;
    ok("delete", s.delete("k").await);
    assert!(
        matches!(s.get("k").await, Err(Error::NotFound)),
        "get after delete"
    );
    ok("second delete", s.delete("k").await);
    assert_listing(&*s, "", &[]).await;
}

/// `exists` follows `set` and `delete`.
pub async fn exists_follows_writes(h: &dyn Harness) {
    let s = open(h, "exists").await;
    assert!(!ok("exists", s.exists("k").await));
    set(&*s, "k", b"", None).await;
    assert!(
        ok("exists", s.exists("k").await),
        "an empty value still exists"
    );
    ok("delete", s.delete("k").await);
    assert!(!ok("exists", s.exists("k").await));
}

/// An empty value is stored and read back as empty, not as missing.
pub async fn empty_value(h: &dyn Harness) {
    let s = open(h, "empty").await;
    set(&*s, "e", b"", None).await;
    assert_eq!(get(&*s, "e").await, Some(vec![]));
    assert_listing(&*s, "", &["e"]).await;
}

/// Every byte value survives, including invalid UTF-8 and NUL.
pub async fn binary_values(h: &dyn Harness) {
    let s = open(h, "binary").await;
    let all: Vec<u8> = (0..=255).collect();
    set(&*s, "all-bytes", &all, None).await;
    assert_eq!(get(&*s, "all-bytes").await, Some(all.clone()));
    let reversed: Vec<u8> = all.iter().rev().copied().collect();
    set(&*s, "reversed", &reversed, None).await;
    assert_eq!(get(&*s, "reversed").await, Some(reversed));
    set(&*s, "nul", b"\0", None).await;
    assert_eq!(get(&*s, "nul").await, Some(vec![0]));
    set(&*s, "invalid-utf8", &[0xC3, 0x28, 0xFF, 0xFE], None).await;
    assert_eq!(
        get(&*s, "invalid-utf8").await,
        Some(vec![0xC3, 0x28, 0xFF, 0xFE])
    );
}

/// A 1 MiB value round-trips, or, on a backend with a lower limit, is
/// refused with `ValueTooLarge` and leaves the old value in place.
pub async fn large_value(h: &dyn Harness) {
    let s = open(h, "large").await;
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    set(&*s, "big", b"old", None).await;
    match h.capabilities().max_value_size {
        Some(limit) if limit < big.len() => {
            let err = s
                .set("big", &big, None)
                .await
                .expect_err("a value over the limit must be refused");
            assert!(
                matches!(err, Error::ValueTooLarge { .. }),
                "expected ValueTooLarge, got {err}"
            );
            assert_eq!(
                get(&*s, "big").await,
                Some(b"old".to_vec()),
                "the old value must survive"
            );
        }
        _ => {
            set(&*s, "big", &big, None).await;
            assert_eq!(get(&*s, "big").await, Some(big));
        }
    }
}

/// An expired key is gone at once for `get`, `exists`, `list` and `count`.
pub async fn ttl_expiry_is_visible_everywhere(h: &dyn Harness) {
    let s = open(h, "ttl-expiry").await;
    set(&*s, "t:short", b"v", Some(SHORT_TTL)).await;
    set(&*s, "t:forever", b"v", None).await;
    assert!(
        get(&*s, "t:short").await.is_some(),
        "a fresh TTL key must be readable"
    );
    assert!(ok("exists", s.exists("t:short").await));
    assert_listing(&*s, "t:", &["t:forever", "t:short"]).await;
    h.advance(PAST_SHORT_TTL).await;
    assert!(
        get(&*s, "t:short").await.is_none(),
        "get must not return an expired key"
    );
    assert!(
        !ok("exists", s.exists("t:short").await),
        "exists must be false for an expired key"
    );
    assert_listing(&*s, "t:", &["t:forever"]).await;
    assert_listing(&*s, "", &["t:forever"]).await;
}

/// Setting a TTL key again without a TTL makes it permanent.
pub async fn ttl_overwrite_without_ttl_is_permanent(h: &dyn Harness) {
    let s = open(h, "ttl-persist").await;
    set(&*s, "k", b"short", Some(SHORT_TTL)).await;
    set(&*s, "k", b"forever", None).await;
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"forever"[..]));
    assert_listing(&*s, "", &["k"]).await;
}

/// Setting a key again replaces its TTL, shorter or longer.
pub async fn ttl_overwrite_replaces_ttl(h: &dyn Harness) {
    let s = open(h, "ttl-replace").await;
    set(&*s, "shortened", b"v", Some(LONG_TTL)).await;
    set(&*s, "shortened", b"v", Some(SHORT_TTL)).await;
    set(&*s, "lengthened", b"v", Some(SHORT_TTL)).await;
    set(&*s, "lengthened", b"v", Some(LONG_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    assert!(
        get(&*s, "shortened").await.is_none(),
        "the new, shorter TTL must apply"
    );
    assert!(
        get(&*s, "lengthened").await.is_some(),
        "the new, longer TTL must apply"
    );
    assert_listing(&*s, "", &["lengthened"]).await;
}

/// `None`, `Some(ZERO)` and a long TTL all outlive a short one.
pub async fn ttl_zero_and_long_survive(h: &dyn Harness) {
    let s = open(h, "ttl-survive").await;
    set(&*s, "none", b"v", None).await;
    set(&*s, "zero", b"v", Some(Duration::ZERO)).await;
    set(&*s, "long", b"v", Some(LONG_TTL)).await;
    set(&*s, "short", b"v", Some(SHORT_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    assert_listing(&*s, "", &["long", "none", "zero"]).await;
    for key in ["none", "zero", "long"] {
        assert!(get(&*s, key).await.is_some(), "{key} must survive");
    }
}

/// `ttl` reports the time left, `None` for a key without one, and
/// `NotFound` for an absent or expired key.
pub async fn ttl_reports_time_left(h: &dyn Harness) {
    let s = open(h, "ttl-left").await;
    set(&*s, "forever", b"v", None).await;
    set(&*s, "zero", b"v", Some(Duration::ZERO)).await;
    set(&*s, "short", b"v", Some(SHORT_TTL)).await;
    set(&*s, "long", b"v", Some(LONG_TTL)).await;
    assert_eq!(ok("ttl", s.ttl("forever").await), None);
    assert_eq!(ok("ttl", s.ttl("zero").await), None);
    let left = ok("ttl", s.ttl("long").await).expect("a TTL key reports its time left");
    assert!(
        left <= LONG_TTL && left > LONG_TTL - Duration::from_secs(60),
        "{left:?} left of {LONG_TTL:?}"
    );
    assert!(matches!(s.ttl("absent").await, Err(Error::NotFound)));
    h.advance(PAST_SHORT_TTL).await;
    assert!(
        matches!(s.ttl("short").await, Err(Error::NotFound)),
        "an expired key has no TTL"
    );
    let later = ok("ttl", s.ttl("long").await).expect("still a TTL key");
    assert!(
        later < left,
        "the time left must shrink: {later:?} after {left:?}"
    );
    assert!(matches!(s.ttl("").await, Err(Error::InvalidKey { .. })));
}

/// A deleted TTL key set again without a TTL is not removed by the old deadline.
pub async fn ttl_delete_then_set(h: &dyn Harness) {
    let s = open(h, "ttl-delete").await;
    set(&*s, "k", b"old", Some(SHORT_TTL)).await;
    ok("delete", s.delete("k").await);
    set(&*s, "k", b"new", None).await;
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"new"[..]));
}

/// `list` filters by prefix, `""` lists all, and `count` agrees.
pub async fn list_prefix_and_all(h: &dyn Harness) {
    let s = open(h, "list-prefix").await;
    for key in ["user:1", "user:2", "user:10", "users", "session:1", "u"] {
        set(&*s, key, b"v", None).await;
    }
    assert_listing(&*s, "user:", &["user:1", "user:10", "user:2"]).await;
    assert_listing(&*s, "user", &["user:1", "user:10", "user:2", "users"]).await;
    assert_listing(&*s, "u", &["u", "user:1", "user:10", "user:2", "users"]).await;
    assert_listing(&*s, "session:1", &["session:1"]).await;
    assert_listing(&*s, "nothing", &[]).await;
    assert_listing(
        &*s,
        "",
        &["session:1", "u", "user:1", "user:10", "user:2", "users"],
    )
    .await;
}

/// `list` is sorted by byte order (not locale, not case-folded) with no duplicates.
pub async fn list_sorted_by_bytes(h: &dyn Harness) {
    let s = open(h, "list-order").await;
    let keys = [
        "b", "B", "a", "Z", "é", "z", "~", "a\u{0}", "0", " ", "ä", "\u{7f}", "日本",
    ];
    for key in keys {
        set(&*s, key, b"v", None).await;
        set(&*s, key, b"again", None).await;
    }
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_listing(&*s, "", &want).await;
}

/// Wildcard characters of glob, `LIKE` and regex are matched literally.
pub async fn list_matches_special_characters_literally(h: &dyn Harness) {
    let s = open(h, "list-literal").await;
    let keys = [
        "a_", "ab", "a%", "a%b", "a*", "a*b", "a?", "a[", "a[b]", "a]", "a\\", "a\\b", "a:", "a:b",
        "a.", "a^", "a$", "a{b}",
    ];
    for key in keys {
        set(&*s, key, b"v", None).await;
    }
    for prefix in [
        "a_", "a%", "a*", "a?", "a[", "a]", "a\\", "a:", "a.", "a^", "a$", "a{",
    ] {
        let mut want: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| k.starts_with(prefix))
            .collect();
        want.sort_unstable();
        assert_listing(&*s, prefix, &want).await;
    }
    for key in keys {
        assert!(get(&*s, key).await.is_some(), "get({key:?})");
    }
    ok("delete", s.delete("a*").await);
    assert!(
        get(&*s, "a*b").await.is_some(),
        "delete(\"a*\") must not touch \"a*b\""
    );
}

/// Keys and prefixes are case-sensitive.
pub async fn list_is_case_sensitive(h: &dyn Harness) {
    let s = open(h, "list-case").await;
    for key in ["user:1", "User:2", "USER:3"] {
        set(&*s, key, b"v", None).await;
    }
    assert_listing(&*s, "User", &["User:2"]).await;
    assert_listing(&*s, "user", &["user:1"]).await;
    assert!(
        get(&*s, "USER:1").await.is_none(),
        "get must be case-sensitive"
    );
}

/// Non-ASCII keys list and match by their UTF-8 bytes.
pub async fn list_non_ascii(h: &dyn Harness) {
    let s = open(h, "list-unicode").await;
    for key in [
        "日本:東京",
        "日本:大阪",
        "日曜",
        "ü",
        "u\u{308}",
        "🦀:1",
        "🦀:2",
    ] {
        set(&*s, key, key.as_bytes(), None).await;
    }
    assert_listing(&*s, "日本:", &["日本:大阪", "日本:東京"]).await;
    assert_listing(&*s, "日", &["日曜", "日本:大阪", "日本:東京"]).await;
    assert_listing(&*s, "🦀", &["🦀:1", "🦀:2"]).await;
    assert_listing(&*s, "u", &["u\u{308}"]).await;
    assert_eq!(get(&*s, "ü").await.as_deref(), Some("ü".as_bytes()));
}

/// Enough keys to need more than one page or batch on paginating backends.
pub async fn list_many_keys(h: &dyn Harness) {
    let s = open(h, "list-many").await;
    let mut want = Vec::new();
    for i in 0..1_500 {
        let key = format!("many:{i:05}");
        set(&*s, &key, b"v", None).await;
        want.push(key);
    }
    set(&*s, "other", b"v", None).await;
    assert_eq!(list(&*s, "many:").await, want);
    assert_eq!(count(&*s, "many:").await, 1_500);
    assert_eq!(count(&*s, "").await, 1_501);
    assert_eq!(count(&*s, "many:001").await, 100);
}

/// Namespaces that old implementations confused never see each other's keys.
pub async fn namespaces_are_isolated(h: &dyn Harness) {
    // (namespace, key) pairs whose naive joins or directory names collide.
    let pairs = [
        ("a", "b:c"),
        ("a:b", "c"),
        // Naively joined with ":", these two are both `a\::c`.
        ("a\\", ":c"),
        ("a\\:", "c"),
        ("a.b", "k"),
        ("a-b", "k"),
        ("a/b", "k"),
        ("a_b", "k"),
        ("A.B", "k"),
        ("NS", "k"),
        ("ns", "k"),
        ("../x", "k"),
        ("x", "k"),
        ("/etc", "k"),
        ("etc", "k"),
        ("a/../../b", "k"),
        ("b", "k"),
        ("test@namespace#123", "k"),
        ("%2F", "k"),
        ("*", "k"),
        ("default", "k"),
    ];
    let mut stores = Vec::new();
    for (namespace, key) in pairs {
        let store = open(h, namespace).await;
        let value = format!("{namespace}|{key}");
        set(&*store, key, value.as_bytes(), None).await;
        stores.push((namespace, key, store));
    }
    for (namespace, key, store) in &stores {
        let want = format!("{namespace}|{key}");
        assert_eq!(
            get(&**store, key).await.as_deref(),
            Some(want.as_bytes()),
            "namespace {namespace:?} must read back its own value"
        );
        assert_eq!(
            list(&**store, "").await,
            vec![key.to_string()],
            "namespace {namespace:?} must list only its own key"
        );
        assert_eq!(
            count(&**store, "").await,
            1,
            "namespace {namespace:?} count"
        );
        assert!(
            get(&**store, "b:c").await.is_none() || *key == "b:c",
            "namespace {namespace:?} sees a neighbour's key"
        );
    }
    // Deleting in one namespace leaves the same key in the others.
    let (_, key, first) = &stores[4];
    ok("delete", first.delete(key).await);
    for (namespace, key, store) in &stores[5..] {
        assert!(
            get(&**store, key).await.is_some(),
            "delete in \"a.b\" removed {key:?} from {namespace:?}"
        );
    }
}

/// The empty namespace is `"default"`; a namespace over 255 bytes is refused.
pub async fn namespace_rules(h: &dyn Harness) {
    let long = "n".repeat(MAX_NAMESPACE_LEN + 1);
    match h.open(&long).await {
        Err(Error::InvalidNamespace { .. }) => {}
        Err(e) => panic!(
            "a {}-byte namespace must give InvalidNamespace, got {e}",
            long.len()
        ),
        Ok(_) => panic!("a {}-byte namespace must be refused", long.len()),
    }
    let longest = "é".repeat(MAX_NAMESPACE_LEN / 2);
    let s = open(h, &longest).await;
    set(&*s, "k", b"v", None).await;
    assert_listing(&*s, "", &["k"]).await;

    if h.capabilities().shared_namespaces {
        let empty = open(h, "").await;
        let default = open(h, "default").await;
        set(&*empty, "shared", b"v", None).await;
        assert!(
            get(&*default, "shared").await.is_some(),
            "\"\" and \"default\" must be one namespace"
        );
    }
}

/// Two stores of one namespace see each other's writes, and closing one
/// leaves the other working (backends with shared namespaces).
pub async fn same_namespace_shares_state(h: &dyn Harness) {
    if !h.capabilities().shared_namespaces {
        return;
    }
    let a = open(h, "shared").await;
    let a2 = open(h, "shared").await;
    let b = open(h, "shared-not").await;
    set(&*a, "k", b"from a", None).await;
    assert_eq!(
        get(&*a2, "k").await.as_deref(),
        Some(&b"from a"[..]),
        "a second store of the namespace must see the first's write"
    );
    assert!(get(&*b, "k").await.is_none());
    ok("close", a.close().await);
    assert!(matches!(a.get("k").await, Err(Error::Closed)));
    assert_eq!(
        get(&*a2, "k").await.as_deref(),
        Some(&b"from a"[..]),
        "closing one store must not close the others"
    );
    set(&*a2, "k2", b"v", None).await;
    ok("close", a2.close().await);
    ok("close", b.close().await);
}

/// Values and TTLs survive closing and reopening; expired keys are not
/// revived (persistent backends).
pub async fn reopen_keeps_values_and_ttls(h: &dyn Harness) {
    if !h.capabilities().persistent {
        return;
    }
    let s = open(h, "reopen").await;
    set(&*s, "forever", b"1", None).await;
    set(&*s, "short", b"2", Some(SHORT_TTL)).await;
    set(&*s, "long", b"3", Some(LONG_TTL)).await;
    ok("close", s.close().await);
    h.advance(PAST_SHORT_TTL).await;
    let s = open(h, "reopen").await;
    assert_listing(&*s, "", &["forever", "long"]).await;
    assert!(
        get(&*s, "short").await.is_none(),
        "an expired key must stay gone after reopening"
    );
    assert_eq!(get(&*s, "long").await.as_deref(), Some(&b"3"[..]));
    assert_eq!(get(&*s, "forever").await.as_deref(), Some(&b"1"[..]));
    ok("close", s.close().await);
}

/// Invalid keys give `InvalidKey` from every operation and change nothing.
pub async fn invalid_keys_change_nothing(h: &dyn Harness) {
    let s = open(h, "invalid-keys").await;
    set(&*s, "keep", b"v", None).await;
    let too_long = "k".repeat(MAX_KEY_LEN + 1);
    let too_long_multibyte = format!("{}é", "k".repeat(MAX_KEY_LEN - 1));
    for key in ["", too_long.as_str(), too_long_multibyte.as_str()] {
        let what = format!("a key of {} bytes", key.len());
        let invalid = |r: Result<()>| matches!(r, Err(Error::InvalidKey { .. }));
        assert!(invalid(s.set(key, b"x", None).await), "set with {what}");
        assert!(invalid(s.get(key).await.map(drop)), "get with {what}");
        assert!(invalid(s.exists(key).await.map(drop)), "exists with {what}");
        assert!(invalid(s.delete(key).await), "delete with {what}");
    }
    assert!(
        matches!(s.list(&too_long).await, Err(Error::InvalidKey { .. })),
        "list with an over-long prefix"
    );
    assert!(
        matches!(s.count(&too_long).await, Err(Error::InvalidKey { .. })),
        "count with an over-long prefix"
    );
    assert_listing(&*s, "", &["keep"]).await;
    assert_eq!(get(&*s, "keep").await.as_deref(), Some(&b"v"[..]));

    let longest = "é".repeat(MAX_KEY_LEN / 2);
    set(&*s, &longest, b"max", None).await;
    assert_eq!(
        get(&*s, &longest).await.as_deref(),
        Some(&b"max"[..]),
        "a {MAX_KEY_LEN}-byte key is valid"
    );
}

/// Asserts that `what`, called after `close`, answered `Closed`.
#[track_caller]
fn assert_closed(what: &str, r: Result<()>) {
    assert!(matches!(r, Err(Error::Closed)), "{what} after close: {r:?}");
}

/// After `close` every operation is `Closed`, and closing again is `Ok`.
pub async fn close_then_closed(h: &dyn Harness) {
    let s = open(h, "close").await;
    set(&*s, "k", b"v", None).await;
    ok("close", s.close().await);
    let closed = assert_closed;
    closed("get", s.get("k").await.map(drop));
    closed("set", s.set("k", b"v", None).await);
    closed("delete", s.delete("k").await);
    closed("exists", s.exists("k").await.map(drop));
    closed("list", s.list("").await.map(drop));
    closed("count", s.count("").await.map(drop));
    closed("ttl", s.ttl("k").await.map(drop));
    ok("second close", s.close().await);
}

/// After `close`, every operation of the trait is `Closed`, including the
/// ones that would have nothing to do (empty batches, an empty page): the
/// closed check comes before any shortcut, on every backend.
pub async fn closed_refuses_even_empty_batches(h: &dyn Harness) {
    use futures_util::StreamExt;
    let s = open(h, "closed-empty").await;
    set(&*s, "k", b"v", None).await;
    ok("close", s.close().await);
    let closed = assert_closed;
    closed("get_many([])", s.get_many(&[]).await.map(drop));
    closed("get_many", s.get_many(&["k"]).await.map(drop));
    closed("set_many([])", s.set_many(&[], None).await);
    closed("set_many", s.set_many(&[("k", b"v")], None).await);
    closed("delete_many([])", s.delete_many(&[]).await.map(drop));
    closed("delete_many", s.delete_many(&["k"]).await.map(drop));
    closed(
        "set_if_absent",
        s.set_if_absent("k", b"v", None).await.map(drop),
    );
    closed(
        "compare_and_swap",
        s.compare_and_swap("k", Some(b"v"), b"w", None)
            .await
            .map(drop),
    );
    closed(
        "compare_and_swap(None)",
        s.compare_and_swap("k", None, b"w", None).await.map(drop),
    );
    closed("increment", s.increment("n", 1).await.map(drop));
    closed("increment(0)", s.increment("n", 0).await.map(drop));
    closed("expire", s.expire("k", LONG_TTL).await);
    closed("persist", s.persist("k").await);
    closed("list_page", s.list_page("", None, 10).await.map(drop));
    closed("list_page(0)", s.list_page("", None, 0).await.map(drop));
    closed("delete_prefix", s.delete_prefix("k").await.map(drop));
    closed("clear", s.clear().await.map(drop));
    let first = s.scan("").next().await;
    assert!(
        matches!(first, Some(Err(Error::Closed))),
        "scan after close: {first:?}"
    );
    ok("second close", s.close().await);
}

/// Operations racing with `close` complete or return `Closed`; none panics.
pub async fn close_races(h: &dyn Harness) {
    let s = open(h, "close-race").await;
    for i in 0..50 {
        set(&*s, &format!("k{i}"), b"v", None).await;
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let key = format!("k{}", (t * 7 + i) % 60);
                let outcome: Result<()> = match i % 6 {
                    0 => s.get(&key).await.map(drop),
                    1 => s.set(&key, b"w", None).await,
                    2 => s.exists(&key).await.map(drop),
                    3 => s.list("k").await.map(drop),
                    4 => s.count("").await.map(drop),
                    _ => s.delete(&key).await,
                };
                match outcome {
                    Ok(()) | Err(Error::NotFound | Error::Closed) => {}
                    Err(e) => panic!("an operation racing with close failed with {e}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::task::yield_now().await;
    ok("close", s.close().await);
    for task in tasks {
        if let Err(e) = task.await {
            panic!("a task racing with close panicked: {e}");
        }
    }
    assert!(matches!(s.get("k1").await, Err(Error::Closed)));
    ok("second close", s.close().await);
}

/// 64 tasks × 500 mixed operations; each task's own keys end as a
/// sequential model of that task predicts, and shared keys hold a value
/// some task wrote.
pub async fn concurrent_tasks(h: &dyn Harness) {
    const TASKS: usize = 64;
    let ops = h.capabilities().concurrent_ops;
    let s = open(h, "concurrency").await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
            let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut shared_written = BTreeSet::new();
            for i in 0..ops {
                let own = format!("c/{t:02}/{}", rng.next() % 16);
                match rng.next() % 10 {
                    0..=3 => {
                        let value = format!("{t}-{i}").into_bytes();
                        ok("set", s.set(&own, &value, None).await);
                        model.insert(own, value);
                    }
                    4..=5 => {
                        ok("delete", s.delete(&own).await);
                        model.remove(&own);
                    }
                    6..=7 => {
                        let got = get(&*s, &own).await;
                        assert_eq!(
                            got.as_ref(),
                            model.get(&own),
                            "task {t} read back {own:?} wrongly"
                        );
                    }
                    8 => {
                        let shared = format!("s/{}", rng.next() % 4);
                        let value = format!("{t}-{i}");
                        ok("set", s.set(&shared, value.as_bytes(), None).await);
                        shared_written.insert(value);
                    }
                    _ => {
                        let mine = list(&*s, &format!("c/{t:02}/")).await;
                        let want: Vec<&String> = model.keys().collect();
                        assert_eq!(
                            mine.iter().collect::<Vec<_>>(),
                            want,
                            "task {t} listed its keys wrongly"
                        );
                    }
                }
            }
            (model, shared_written)
        }));
    }
    let mut all_own = BTreeMap::new();
    let mut all_shared = BTreeSet::new();
    for task in tasks {
        match task.await {
            Ok((model, shared)) => {
                all_own.extend(model);
                all_shared.extend(shared);
            }
            Err(e) => panic!("a concurrent task failed: {e}"),
        }
    }
    let want: Vec<&String> = all_own.keys().collect();
    assert_eq!(list(&*s, "c/").await.iter().collect::<Vec<_>>(), want);
    for (key, value) in &all_own {
        assert_eq!(get(&*s, key).await.as_ref(), Some(value), "{key}");
    }
    for key in list(&*s, "s/").await {
        let value = get(&*s, &key).await.unwrap_or_default();
        let value = String::from_utf8(value).unwrap_or_default();
        assert!(
            all_shared.contains(&value),
            "shared key {key} holds {value:?}, which nobody wrote"
        );
    }
}

/// Random operation sequences agree with a `BTreeMap` model, TTLs included
/// (short TTLs only where the harness has a manual clock).
///
/// Runs under proptest, so a failure is shrunk to a short sequence.
pub fn state_machine(rt: &tokio::runtime::Runtime, h: &dyn Harness) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let cases = std::env::var("KVS_TEST_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let run = std::sync::atomic::AtomicUsize::new(0);
    let strategy = model::ops(h.capabilities().manual_clock);
    let result = runner.run(&strategy, |ops| {
        let namespace = format!(
            "model-{}",
            run.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        rt.block_on(model::check(h, &namespace, &ops))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("the store disagrees with the model: {e}");
    }
}

/// A tiny deterministic generator, so that failures replay.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ------------------------------------------------------------ documents

async fn open_docs(h: &dyn Harness, namespace: &str) -> Arc<dyn DocumentStore> {
    match h.open_documents(namespace).await {
        Ok(store) => store,
        Err(e) => panic!("opening documents of {namespace:?} failed: {e}"),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn doc(id: &str, data: Value) -> Document {
    Document::new(id, object(data))
}

async fn put(s: &dyn DocumentStore, collection: &str, d: Document) {
    ok(
        &format!("put({collection:?}, {:?})", d.id),
        s.put(collection, d).await,
    );
}

async fn ids(s: &dyn DocumentStore, collection: &str, filter: Value) -> Vec<String> {
    let found = ok(
        &format!("query({filter})"),
        s.query(collection, &object(filter.clone())).await,
    );
    found.into_iter().map(|d| d.id).collect()
}

/// `put` upserts by id, keeps `created_at`, moves `updated_at` forward;
/// `get_doc` of a missing id is `NotFound`; `delete_doc` of one is `Ok`.
pub async fn documents_upsert_and_timestamps(h: &dyn Harness) {
    let s = open_docs(h, "docs-upsert").await;
    let mut first = doc("u1", json!({"name": "ada", "tags": ["a", "b"], "n": 1.5}));
    first.metadata.insert("source".into(), "import".into());
    put(&*s, "users", first.clone()).await;
    let got = ok("get_doc", s.get_doc("users", "u1").await);
    assert_eq!(
        (got.id.as_str(), &got.data, &got.metadata),
        ("u1", &first.data, &first.metadata)
    );
    assert_eq!(
        got.created_at, got.updated_at,
        "a new document is created when it is updated"
    );
    assert!(
        got.created_at > chrono::DateTime::UNIX_EPOCH,
        "the store sets the timestamps"
    );

    h.advance(Duration::from_secs(2)).await;
    put(&*s, "users", doc("u1", json!({"name": "ada lovelace"}))).await;
    let second = ok("get_doc", s.get_doc("users", "u1").await);
    assert_eq!(
        second.data,
        object(json!({"name": "ada lovelace"})),
        "put replaces the data"
    );
    assert_eq!(second.created_at, got.created_at, "put keeps created_at");
    assert!(
        second.updated_at > got.updated_at,
        "put moves updated_at forward"
    );
    // Even with no time passing in between.
    put(&*s, "users", doc("u1", json!({"name": "again"}))).await;
    let third = ok("get_doc", s.get_doc("users", "u1").await);
    assert!(
        third.updated_at > second.updated_at,
        "updated_at must move forward on every put"
    );

    assert!(matches!(
        s.get_doc("users", "nobody").await,
        Err(Error::NotFound)
    ));
    ok("delete_doc", s.delete_doc("users", "u1").await);
    assert!(matches!(
        s.get_doc("users", "u1").await,
        Err(Error::NotFound)
    ));
    ok(
        "delete_doc of a missing id",
        s.delete_doc("users", "u1").await,
    );
    assert!(ids(&*s, "users", json!({})).await.is_empty());
}

/// Every operator, nested paths, AND, the empty filter, type mismatches
/// and unicode, on one small collection; results sorted by id.
pub async fn documents_filters(h: &dyn Harness) {
    let s = open_docs(h, "docs-filters").await;
    let people = [
        (
            "p1",
            json!({"name": "ada", "age": 36, "city": {"name": "London"}, "score": 1}),
        ),
        (
            "p2",
            json!({"name": "bob", "age": 17, "city": {"name": "Paris"}, "score": 1.0}),
        ),
        (
            "p3",
            json!({"name": "chloé", "age": "25", "city": {"name": "Paris"}}),
        ),
        (
            "p4",
            json!({"name": "dan", "age": 30, "tags": ["x", "y"], "nick": null}),
        ),
        (
            "p5",
            json!({"name": "日本", "age": 99.5, "city": {"name": "東京"}, "active": true}),
        ),
        ("p0", json!({"name": "zed", "age": 18, "active": false})),
    ];
    // Put out of id order: results must come back sorted anyway.
    for (id, data) in people.iter().rev() {
        put(&*s, "people", doc(id, data.clone())).await;
    }
    let cases = [
        (json!({}), vec!["p0", "p1", "p2", "p3", "p4", "p5"]),
        (json!({"name": "ada"}), vec!["p1"]),
        (json!({"score": 1}), vec!["p1", "p2"]),
        (json!({"age": 25}), vec![]),
        (json!({"age": "25"}), vec!["p3"]),
        (json!({"city.name": "Paris"}), vec!["p2", "p3"]),
        (json!({"city": {"name": "Paris"}}), vec!["p2", "p3"]),
        (json!({"city.name": "Paris", "age": 17}), vec!["p2"]),
        (json!({"age": {"$gt": 18}}), vec!["p1", "p4", "p5"]),
        (json!({"age": {"$gte": 18}}), vec!["p0", "p1", "p4", "p5"]),
        (json!({"age": {"$lt": 30}}), vec!["p0", "p2"]),
        (json!({"age": {"$lte": 30, "$gt": 17}}), vec!["p0", "p4"]),
        (json!({"age": {"$gt": "20"}}), vec!["p3"]),
        (
            json!({"name": {"$ne": "ada"}}),
            vec!["p0", "p2", "p3", "p4", "p5"],
        ),
        (json!({"nick": {"$ne": "x"}}), vec!["p4"]),
        (
            json!({"name": {"$in": ["bob", "dan", "eve"]}}),
            vec!["p2", "p4"],
        ),
        (json!({"age": {"$in": [36, "25"]}}), vec!["p1", "p3"]),
        (json!({"nick": {"$exists": true}}), vec!["p4"]),
        (json!({"city": {"$exists": false}}), vec!["p0", "p4"]),
        (json!({"nick": null}), vec!["p4"]),
        (json!({"active": true}), vec!["p5"]),
        (json!({"active": false}), vec!["p0"]),
        (json!({"tags": ["x", "y"]}), vec!["p4"]),
        (json!({"tags": ["y", "x"]}), vec![]),
        (json!({"name": {"$prefix": "ch"}}), vec!["p3"]),
        (json!({"name": {"$prefix": "日"}}), vec!["p5"]),
        (json!({"city.name": "東京"}), vec!["p5"]),
        (json!({"missing": 1}), vec![]),
        (json!({"name": {"$gte": "b", "$lt": "d"}}), vec!["p2", "p3"]),
    ];
    for (filter, want) in cases {
        assert_eq!(
            ids(&*s, "people", filter.clone()).await,
            want,
            "query({filter})"
        );
    }
}

/// Documents never appear among plain keys and plain keys never reach
/// documents; collections and namespaces are isolated.
pub async fn documents_isolation(h: &dyn Harness) {
    let s = open_docs(h, "docs-iso").await;
    set(&*s, "plain", b"v", None).await;
    put(&*s, "users", doc("u1", json!({"a": 1}))).await;
    put(&*s, "users:x", doc("u1", json!({"a": 2}))).await;
    put(&*s, "users", doc("x:u1", json!({"a": 3}))).await;
    // Plain keys spelled like possible internal document keys.
    for key in ["users:u1", "users\\:x:u1", "u1", "users"] {
        set(&*s, key, b"plain", None).await;
    }
    assert_eq!(ids(&*s, "users", json!({})).await, vec!["u1", "x:u1"]);
    assert_eq!(ids(&*s, "users:x", json!({})).await, vec!["u1"]);
    assert_eq!(
        ok("get_doc", s.get_doc("users", "u1").await).data,
        object(json!({"a": 1}))
    );
    assert_eq!(
        list(&*s, "").await,
        vec!["plain", "u1", "users", "users:u1", "users\\:x:u1"]
    );
    assert_eq!(count(&*s, "").await, 5);
    ok("delete", s.delete("users:u1").await);
    assert!(
        s.get_doc("users", "u1").await.is_ok(),
        "deleting a plain key must not delete a document"
    );

    let other = open_docs(h, "docs-iso-other").await;
    assert!(
        ids(&*other, "users", json!({})).await.is_empty(),
        "namespaces must isolate documents"
    );
    put(&*other, "users", doc("u1", json!({"a": "other"}))).await;
    assert_eq!(
        ok("get_doc", s.get_doc("users", "u1").await).data,
        object(json!({"a": 1}))
    );
}

/// Bad input gives clear errors and changes nothing; odd but valid input
/// (SQL metacharacters, `$` and dots in data, 1 MB documents) round-trips.
pub async fn documents_bad_input(h: &dyn Harness) {
    let s = open_docs(h, "docs-bad").await;
    put(&*s, "c", doc("keep", json!({"a": 1}))).await;
    for filter in [
        json!({"a": {"$regex": "x"}}),
        json!({"a": {"$in": 1}}),
        json!({"a": {"$gt": 1, "b": 1}}),
    ] {
        match s.query("c", &object(filter.clone())).await {
            Err(Error::InvalidQuery { .. }) => {}
            other => panic!("query({filter}) must be InvalidQuery, got {other:?}"),
        }
    }
    for (collection, id) in [
        ("", "x"),
        ("c", ""),
        ("c", &*"i".repeat(crate::MAX_ID_LEN + 1)),
    ] {
        let err = s
            .put(collection, doc(id, json!({})))
            .await
            .expect_err("invalid id or collection");
        assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
    }
    let evil = "'; DROP TABLE kvs_docs; --";
    put(
        &*s,
        "c",
        doc(
            evil,
            json!({evil: evil, "a.b": "dotted key", "$op": "dollar key", "nested": {"x\"y": 1}}),
        ),
    )
    .await;
    assert_eq!(ids(&*s, "c", json!({evil: evil})).await, vec![evil]);
    assert_eq!(ids(&*s, "c", json!({"nested.x\"y": 1})).await, vec![evil]);
    let got = ok("get_doc", s.get_doc("c", evil).await);
    assert_eq!(
        got.data.get("$op"),
        Some(&json!("dollar key")),
        "`$` keys in data are plain data"
    );
    assert_eq!(
        got.data.get("a.b"),
        Some(&json!("dotted key")),
        "dotted keys in data are plain data"
    );
    assert_eq!(
        ids(&*s, "c", json!({})).await,
        vec![evil, "keep"],
        "nothing else changed"
    );

    let big: String = "x".repeat(1024 * 1024);
    match h.capabilities().max_value_size {
        Some(limit) if limit < big.len() => {
            let err = s
                .put("c", doc("keep", json!({"blob": big})))
                .await
                .expect_err("a document over the limit");
            assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
            let kept = ok("get_doc", s.get_doc("c", "keep").await);
            assert_eq!(
                kept.data,
                object(json!({"a": 1})),
                "the old document must survive"
            );
        }
        _ => {
            put(&*s, "c", doc("big", json!({"blob": big}))).await;
            let got = ok("get_doc", s.get_doc("c", "big").await);
            assert_eq!(got.data.get("blob"), Some(&json!(big)));
        }
    }
}

/// 10,000 documents; a selective filter finds its 1% exactly.
pub async fn documents_many(h: &dyn Harness) {
    let s = open_docs(h, "docs-many").await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            for i in (t..10_000).step_by(16) {
                let d = doc(
                    &format!("d{i:05}"),
                    json!({"i": i, "bucket": i % 100, "name": format!("n{i}")}),
                );
                ok("put", s.put("many", d).await);
            }
        }));
    }
    for task in tasks {
        if let Err(e) = task.await {
            panic!("a writer failed: {e}");
        }
    }
    let found = ids(&*s, "many", json!({"bucket": 42})).await;
    let want: Vec<String> = (0..10_000)
        .filter(|i| i % 100 == 42)
        .map(|i| format!("d{i:05}"))
        .collect();
    assert_eq!(found, want);
    assert_eq!(
        ids(&*s, "many", json!({"i": {"$gte": 9_990}})).await.len(),
        10
    );
    assert_eq!(ids(&*s, "many", json!({})).await.len(), 10_000);
}

/// After `close`, document operations return `Closed`.
pub async fn documents_close(h: &dyn Harness) {
    let s = open_docs(h, "docs-close").await;
    put(&*s, "c", doc("a", json!({}))).await;
    ok("close", s.close().await);
    assert!(matches!(
        s.put("c", doc("b", json!({}))).await,
        Err(Error::Closed)
    ));
    assert!(matches!(s.get_doc("c", "a").await, Err(Error::Closed)));
    assert!(matches!(
        s.query("c", &Map::new()).await,
        Err(Error::Closed)
    ));
    assert!(matches!(s.delete_doc("c", "a").await, Err(Error::Closed)));
}

/// `collections` names the collections that hold documents, in order and
/// in this namespace only; `restore` keeps the timestamps it is given.
pub async fn documents_restore_and_collections(h: &dyn Harness) {
    let s = open_docs(h, "docs-restore").await;
    let other = open_docs(h, "docs-restore-other").await;
    assert!(ok("collections", s.collections().await).is_empty());
    put(&*s, "b:c", doc("1", json!({"n": 1}))).await;
    put(&*s, "a", doc("1", json!({}))).await;
    put(&*s, "a", doc("2", json!({}))).await;
    put(&*other, "z", doc("1", json!({}))).await;
    assert_eq!(ok("collections", s.collections().await), ["a", "b:c"]);
    let mut old = doc("old", json!({"kept": true}));
    old.created_at = crate::document::from_millis(1_500_000_000_000);
    old.updated_at = crate::document::from_millis(1_600_000_000_000);
    ok("restore", s.restore("a", old.clone()).await);
    assert_eq!(
        ok("get_doc", s.get_doc("a", "old").await),
        old,
        "timestamps kept"
    );
    // Restoring over an existing document replaces it, timestamps too.
    let mut again = old.clone();
    again.data = object(json!({"kept": false}));
    again.created_at = crate::document::from_millis(1_400_000_000_000);
    ok("restore", s.restore("a", again.clone()).await);
    assert_eq!(ok("get_doc", s.get_doc("a", "old").await), again);
    ok("delete_doc", s.delete_doc("b:c", "1").await);
    assert_eq!(ok("collections", s.collections().await), ["a"]);
    assert!(matches!(
        s.restore("", doc("x", json!({}))).await,
        Err(Error::InvalidKey { .. })
    ));
    assert_eq!(
        list(&*s, "").await,
        Vec::<String>::new(),
        "documents are not keys"
    );
}

// ------------------------------------------- batches, atomics, TTL, paging

/// `set_many`/`get_many`/`delete_many`, with duplicates, missing keys and
/// a bad key that stops the whole batch.
pub async fn batches(h: &dyn Harness) {
    let s = open(h, "batches").await;
    let entries: [(&str, &[u8]); 4] = [("a", b"1"), ("b", b"2"), ("a", b"3"), ("c", b"")];
    ok("set_many", s.set_many(&entries, None).await);
    let got = ok(
        "get_many",
        s.get_many(&["a", "missing", "b", "a", "c"]).await,
    );
    let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
    assert_eq!(
        got,
        vec![
            Some(&b"3"[..]),
            None,
            Some(&b"2"[..]),
            Some(&b"3"[..]),
            Some(&b""[..])
        ],
        "the last duplicate wins; answers in request order"
    );
    let bad: [(&str, &[u8]); 2] = [("fine", b"x"), ("", b"y")];
    assert!(matches!(
        s.set_many(&bad, None).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(
        get(&*s, "fine").await.is_none(),
        "a batch with a bad key writes nothing"
    );
    assert!(matches!(
        s.get_many(&["ok", ""]).await,
        Err(Error::InvalidKey { .. })
    ));
    assert_eq!(
        ok(
            "delete_many",
            s.delete_many(&["a", "a", "missing", "c"]).await
        ),
        2,
        "a duplicate counts once"
    );
    assert_listing(&*s, "", &["b"]).await;
    let ttl_entries: [(&str, &[u8]); 2] = [("t1", b"x"), ("t2", b"y")];
    ok("set_many", s.set_many(&ttl_entries, Some(SHORT_TTL)).await);
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        ok("get_many", s.get_many(&["t1", "t2", "b"]).await)
            .iter()
            .filter(|v| v.is_some())
            .count(),
        1
    );
    assert_eq!(
        ok("delete_many", s.delete_many(&["t1", "t2"]).await),
        0,
        "expired keys are not counted"
    );
}

/// Batches larger than one backend request (DynamoDB takes 25 writes and
/// 100 reads a request) keep order, duplicates and counts across chunks.
pub async fn batches_larger_than_one_request(h: &dyn Harness) {
    let s = open(h, "big-batches").await;
    let keys: Vec<String> = (0..250).map(|i| format!("k{i:03}")).collect();
    let mut entries: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), k.as_bytes())).collect();
    // Duplicates far apart, in different chunks: the last one wins.
    entries.push(("k010", b"late"));
    entries.push(("k200", b"late"));
    ok("set_many", s.set_many(&entries, None).await);
    assert_eq!(count(&*s, "").await, 250);

    let mut wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    wanted.extend(["absent", "k010", "k249", "absent"]);
    let got = ok("get_many", s.get_many(&wanted).await);
    assert_eq!(got.len(), wanted.len(), "one answer per requested key");
    for (key, value) in wanted.iter().zip(&got) {
        let expected: Option<&[u8]> = match *key {
            "absent" => None,
            "k010" | "k200" => Some(b"late"),
            other => Some(other.as_bytes()),
        };
        assert_eq!(value.as_deref(), expected, "get_many answer for {key:?}");
    }

    if let Some(limit) = h.capabilities().max_value_size {
        let big = vec![7u8; limit + 1];
        let bad: [(&str, &[u8]); 2] = [("new", b"x"), ("k000", &big)];
        let err = s
            .set_many(&bad, None)
            .await
            .expect_err("a value over the limit must stop the batch");
        assert!(
            matches!(err, Error::ValueTooLarge { .. }),
            "expected ValueTooLarge, got {err}"
        );
        assert!(get(&*s, "new").await.is_none(), "the batch wrote nothing");
        assert_eq!(get(&*s, "k000").await, Some(b"k000".to_vec()));
    }

    let mut doomed: Vec<&str> = keys.iter().map(String::as_str).collect();
    doomed.extend(["k000", "absent"]);
    assert_eq!(ok("delete_many", s.delete_many(&doomed).await), 250);
    assert_eq!(count(&*s, "").await, 0);
}

/// `set_if_absent` is a lock: the first caller wins until the key expires.
pub async fn set_if_absent_is_a_lock(h: &dyn Harness) {
    let s = open(h, "lock").await;
    assert!(ok(
        "set_if_absent",
        s.set_if_absent("lock", b"first", Some(SHORT_TTL)).await
    ));
    assert!(!ok(
        "set_if_absent",
        s.set_if_absent("lock", b"second", None).await
    ));
    assert_eq!(get(&*s, "lock").await.as_deref(), Some(&b"first"[..]));
    h.advance(PAST_SHORT_TTL).await;
    assert!(
        ok(
            "set_if_absent",
            s.set_if_absent("lock", b"third", None).await
        ),
        "an expired lock can be taken"
    );
    assert_eq!(get(&*s, "lock").await.as_deref(), Some(&b"third"[..]));
    assert!(matches!(
        s.set_if_absent("", b"x", None).await,
        Err(Error::InvalidKey { .. })
    ));
}

/// `compare_and_swap` replaces only the expected value (`None` = absent).
pub async fn compare_and_swap(h: &dyn Harness) {
    let s = open(h, "cas").await;
    assert!(
        !ok("cas", s.compare_and_swap("k", Some(b"x"), b"y", None).await),
        "absent is not Some(x)"
    );
    assert!(ok("cas", s.compare_and_swap("k", None, b"v1", None).await));
    assert!(
        !ok("cas", s.compare_and_swap("k", None, b"v2", None).await),
        "present is not None"
    );
    assert!(!ok(
        "cas",
        s.compare_and_swap("k", Some(b"wrong"), b"v2", None).await
    ));
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"v1"[..]));
    assert!(ok(
        "cas",
        s.compare_and_swap("k", Some(b"v1"), b"v2", Some(SHORT_TTL))
            .await
    ));
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"v2"[..]));
    h.advance(PAST_SHORT_TTL).await;
    assert!(
        ok("cas", s.compare_and_swap("k", None, b"v3", None).await),
        "the swapped value took the new TTL"
    );
}

/// `increment` counts from 0, keeps the TTL, and refuses non-integers and overflow.
pub async fn increment(h: &dyn Harness) {
    let s = open(h, "incr").await;
    assert_eq!(ok("increment", s.increment("n", 5).await), 5);
    assert_eq!(ok("increment", s.increment("n", -7).await), -2);
    assert_eq!(
        get(&*s, "n").await.as_deref(),
        Some(&b"-2"[..]),
        "counters are stored as decimal text"
    );
    set(&*s, "text", b"abc", None).await;
    assert!(matches!(
        s.increment("text", 1).await,
        Err(Error::InvalidValue { .. })
    ));
    assert_eq!(
        get(&*s, "text").await.as_deref(),
        Some(&b"abc"[..]),
        "a refused increment changes nothing"
    );
    set(&*s, "max", i64::MAX.to_string().as_bytes(), None).await;
    assert!(matches!(
        s.increment("max", 1).await,
        Err(Error::InvalidValue { .. })
    ));
    set(&*s, "ttl", b"10", Some(LONG_TTL)).await;
    assert_eq!(ok("increment", s.increment("ttl", 1).await), 11);
    assert!(
        ok("ttl", s.ttl("ttl").await).is_some(),
        "increment keeps the TTL"
    );
    assert_eq!(ok("increment", s.increment("ttl", 1).await), 12);
    assert!(ok("ttl", s.ttl("ttl").await).is_some());

    // A counter is a value like any other: every read gives its text, CAS
    // compares against that text, and `set` replaces it.
    set(&*s, "c", b"41", None).await;
    assert_eq!(ok("increment", s.increment("c", 1).await), 42);
    assert_eq!(
        ok("get_many", s.get_many(&["c", "n"]).await),
        vec![
            Some(Bytes::from_static(b"42")),
            Some(Bytes::from_static(b"-2"))
        ]
    );
    assert!(!ok(
        "compare_and_swap",
        s.compare_and_swap("c", Some(b"41"), b"x", None).await
    ));
    assert!(ok(
        "compare_and_swap",
        s.compare_and_swap("c", Some(b"42"), b"7", None).await
    ));
    assert_eq!(ok("increment", s.increment("c", 3).await), 10);
    set(&*s, "c", b"plain", None).await;
    assert_eq!(get(&*s, "c").await.as_deref(), Some(&b"plain"[..]));
    assert!(matches!(
        s.increment("c", 1).await,
        Err(Error::InvalidValue { .. })
    ));

    // An expired counter starts again from zero.
    set(&*s, "short", b"100", Some(SHORT_TTL)).await;
    assert_eq!(ok("increment", s.increment("short", 1).await), 101);
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(ok("increment", s.increment("short", 1).await), 1);
    assert_eq!(
        ok("ttl", s.ttl("short").await),
        None,
        "a fresh counter has no TTL"
    );
}

/// A TTL longer than [`MAX_TTL`](crate::expiry::MAX_TTL) is `InvalidTtl`
/// on every backend, from every write that takes one, before anything is
/// written: the key keeps its value and its TTL. `MAX_TTL` itself is kept.
pub async fn ttl_beyond_the_limit_changes_nothing(h: &dyn Harness) {
    use crate::expiry::MAX_TTL;
    let s = open(h, "ttl-limit").await;
    set(&*s, "k", b"old", Some(LONG_TTL)).await;
    let invalid = |what: &str, r: Result<()>| {
        assert!(
            matches!(r, Err(Error::InvalidTtl { .. })),
            "{what} with a TTL beyond the limit: {r:?}"
        );
    };
    for ttl in [
        MAX_TTL + Duration::from_millis(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        invalid("set", s.set("k", b"new", Some(ttl)).await);
        invalid(
            "set_many",
            s.set_many(&[("k", b"new"), ("k2", b"new")], Some(ttl))
                .await,
        );
        invalid(
            "set_if_absent",
            s.set_if_absent("fresh", b"new", Some(ttl)).await.map(drop),
        );
        invalid(
            "compare_and_swap",
            s.compare_and_swap("k", Some(b"old"), b"new", Some(ttl))
                .await
                .map(drop),
        );
        invalid("expire", s.expire("k", ttl).await);
    }
    assert_eq!(get(&*s, "k").await.as_deref(), Some(&b"old"[..]));
    let left = ok("ttl", s.ttl("k").await);
    assert!(
        left.is_some_and(|t| t <= LONG_TTL),
        "k keeps its TTL: {left:?}"
    );
    assert_eq!(get(&*s, "k2").await, None);
    assert_eq!(get(&*s, "fresh").await, None);

    set(&*s, "longest", b"v", Some(MAX_TTL)).await;
    let left = ok("ttl", s.ttl("longest").await);
    assert!(
        left.is_some_and(|t| t > Duration::from_secs(100 * 365 * 86_400)),
        "MAX_TTL is kept: {left:?}"
    );
}

/// Counters are read as Redis's `INCRBY` reads them, on every backend:
/// `+7`, `007`, `-0` and padded numbers are not counters (and stay as
/// they were), and `increment(key, 0)` reads a counter without changing it.
pub async fn counters_read_as_redis_reads_them(h: &dyn Harness) {
    let s = open(h, "counter-text").await;
    for text in ["+7", "007", "-0", " 7", "7 ", "1e3", "0x10", "", "-", "٣"] {
        set(&*s, "c", text.as_bytes(), None).await;
        let r = s.increment("c", 1).await;
        assert!(
            matches!(r, Err(Error::InvalidValue { .. })),
            "increment of {text:?}: {r:?}"
        );
        assert_eq!(
            get(&*s, "c").await.as_deref(),
            Some(text.as_bytes()),
            "a refused increment leaves {text:?} as it was"
        );
    }
    for (text, n) in [("0", 0), ("-7", -7), ("9223372036854775807", i64::MAX)] {
        set(&*s, "c", text.as_bytes(), None).await;
        assert_eq!(
            ok("increment by 0", s.increment("c", 0).await),
            n,
            "increment({text:?}, 0)"
        );
        assert_eq!(get(&*s, "c").await.as_deref(), Some(text.as_bytes()));
    }
    assert_eq!(ok("increment by 0", s.increment("fresh", 0).await), 0);
    assert_eq!(ok("increment by 0", s.increment("fresh", 0).await), 0);
    assert_eq!(ok("increment", s.increment("fresh", -1).await), -1);
    set(&*s, "min", i64::MIN.to_string().as_bytes(), None).await;
    assert!(matches!(
        s.increment("min", -1).await,
        Err(Error::InvalidValue { .. })
    ));
}

/// Concurrent increments lose no update; concurrent `set_if_absent` has one winner.
pub async fn atomic_under_concurrency(h: &dyn Harness) {
    // Where stores share a namespace (a server, a file), two handles: two
    // clients racing, as two processes would; half the tasks use each.
    let s = open(h, "atomic-race").await;
    let other = if h.capabilities().shared_namespaces {
        open(h, "atomic-race").await
    } else {
        Arc::clone(&s)
    };
    let mut tasks = Vec::new();
    for t in 0..32 {
        let s = Arc::clone(if t % 2 == 0 { &s } else { &other });
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                ok("increment", s.increment("counter", 1).await);
            }
            ok(
                "set_if_absent",
                s.set_if_absent("winner", format!("{t}").as_bytes(), None)
                    .await,
            )
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await {
            Ok(true) => winners += 1,
            Ok(false) => {}
            Err(e) => panic!("a task failed: {e}"),
        }
    }
    assert_eq!(winners, 1, "exactly one set_if_absent may win");
    assert_eq!(
        get(&*s, "counter").await.as_deref(),
        Some(&b"800"[..]),
        "no increment may be lost"
    );
}

/// `expire` and `persist` change the TTL without touching the value.
pub async fn expire_and_persist(h: &dyn Harness) {
    let s = open(h, "expire").await;
    assert!(matches!(
        s.expire("absent", SHORT_TTL).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(s.persist("absent").await, Err(Error::NotFound)));
    set(&*s, "session", b"data", None).await;
    set(&*s, "kept", b"data", Some(SHORT_TTL)).await;
    ok("expire", s.expire("session", SHORT_TTL).await);
    ok("persist", s.persist("kept").await);
    assert_eq!(ok("ttl", s.ttl("kept").await), None);
    assert!(ok("ttl", s.ttl("session").await).is_some());
    h.advance(PAST_SHORT_TTL).await;
    assert!(
        get(&*s, "session").await.is_none(),
        "expire must make the key expire"
    );
    assert_eq!(
        get(&*s, "kept").await.as_deref(),
        Some(&b"data"[..]),
        "persist must keep the value"
    );
    assert!(
        matches!(s.expire("session", LONG_TTL).await, Err(Error::NotFound)),
        "an expired key cannot be revived"
    );
}

/// `get_and_touch` reads a value and gives it a new TTL in one step:
/// sliding expiry. It never revives or creates a key.
pub async fn get_and_touch_slides_expiry(h: &dyn Harness) {
    let s = open(h, "touch").await;
    assert!(matches!(
        s.get_and_touch("absent", LONG_TTL).await,
        Err(Error::NotFound)
    ));
    assert!(
        !ok("exists", s.exists("absent").await),
        "get_and_touch must not create a key"
    );
    assert!(matches!(
        s.get_and_touch("", LONG_TTL).await,
        Err(Error::InvalidKey { .. })
    ));
    set(&*s, "session", b"\x00user\xff", Some(SHORT_TTL)).await;
    set(&*s, "idle", b"v", Some(SHORT_TTL)).await;
    set(&*s, "forever", b"f", None).await;
    let value = ok("get_and_touch", s.get_and_touch("session", LONG_TTL).await);
    assert_eq!(
        &value[..],
        b"\x00user\xff",
        "get_and_touch returns the value"
    );
    let left = ok("ttl", s.ttl("session").await).expect("a TTL after the touch");
    assert!(
        left > SHORT_TTL && left <= LONG_TTL,
        "touched TTL: {left:?}"
    );
    let value = ok("get_and_touch", s.get_and_touch("forever", SHORT_TTL).await);
    assert_eq!(&value[..], b"f");
    assert!(
        ok("ttl", s.ttl("forever").await).is_some(),
        "a touch gives a permanent key a TTL"
    );
    ok(
        "get_and_touch",
        s.get_and_touch("forever", Duration::ZERO).await,
    );
    assert_eq!(
        ok("ttl", s.ttl("forever").await),
        None,
        "ZERO removes the TTL"
    );

    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        get(&*s, "session").await.as_deref(),
        Some(&b"\x00user\xff"[..]),
        "a touched key outlives its first TTL"
    );
    assert!(get(&*s, "idle").await.is_none(), "an untouched key expires");
    assert!(
        matches!(
            s.get_and_touch("idle", LONG_TTL).await,
            Err(Error::NotFound)
        ),
        "an expired key cannot be revived"
    );
    assert_eq!(get(&*s, "forever").await.as_deref(), Some(&b"f"[..]));
}

/// The cache over this backend: 200 concurrent misses across two caches
/// (two stores of one namespace where the backend shares them, as two
/// processes would) run one load; tags drop exactly the values they
/// carry; a failure is reported and not kept.
pub async fn cache_single_flight_and_tags(h: &dyn Harness) {
    use crate::cache::{Cache, Lease};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let a = open(h, "cache").await;
    let b = if h.capabilities().shared_namespaces {
        open(h, "cache").await
    } else {
        Arc::clone(&a)
    };
    let lease = Lease {
        poll: Duration::from_millis(2),
        max_poll: Duration::from_millis(20),
        ..Lease::default()
    };
    let caches = [
        Cache::builder(a).distributed(lease).build(),
        Cache::builder(b).distributed(lease).build(),
    ];
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..200)
        .map(|i| {
            let cache = caches[i % 2].clone();
            let runs = Arc::clone(&runs);
            tokio::spawn(async move {
                cache
                    .get_or_set("report", None, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Error>("loaded once")
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        let value = ok("get_or_set", caller.await.expect("a caller panicked"));
        assert_eq!(&value[..], b"loaded once");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "200 concurrent misses must load once"
    );

    let [one, other] = &caches;
    ok(
        "set_tagged",
        one.set_tagged("u42:profile", b"p", None, &["user:42"])
            .await,
    );
    ok(
        "set_tagged",
        one.set_tagged("u42:orders", b"o", None, &["user:42", "orders"])
            .await,
    );
    ok(
        "set_tagged",
        one.set_tagged("u7:orders", b"o7", None, &["user:7", "orders"])
            .await,
    );
    ok("invalidate_tag", other.invalidate_tag("user:42").await);
    for dropped in ["u42:profile", "u42:orders"] {
        assert!(
            matches!(one.get(dropped).await, Err(Error::NotFound)),
            "invalidate_tag must drop {dropped}"
        );
    }
    assert_eq!(
        &ok("get", one.get("u7:orders").await)[..],
        b"o7",
        "other tags stay"
    );
    assert_eq!(&ok("get", other.get("report").await)[..], b"loaded once");

    let failed = one
        .get_or_set("broken", None, || async {
            Err::<Bytes, _>("upstream down")
        })
        .await;
    assert!(
        matches!(&failed, Err(Error::Load { source, .. }) if source.to_string() == "upstream down"),
        "a loader's error is Error::Load: {failed:?}"
    );
    let retried = one
        .get_or_set("broken", None, || async { Ok::<_, Error>("recovered") })
        .await;
    assert_eq!(&ok("get_or_set after a failure", retried)[..], b"recovered");
}

/// `list_page` pages in byte order with a cursor; `scan` streams the same keys.
pub async fn paging_and_scan(h: &dyn Harness) {
    use futures_util::StreamExt;
    let s = open(h, "paging").await;
    let keys: Vec<String> = (0..2_500).map(|i| format!("p:{i:05}")).collect();
    let entries: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
    for chunk in entries.chunks(500) {
        ok("set_many", s.set_many(chunk, None).await);
    }
    set(&*s, "q", b"v", None).await;
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = ok(
            "list_page",
            s.list_page("p:", cursor.as_deref(), 1000).await,
        );
        assert!(page.len() <= 1000);
        pages += 1;
        // Changes between pages: a key before the cursor appears on no page,
        // one after it appears once.
        if pages == 1 {
            set(&*s, "p:00000a", b"v", None).await;
            set(&*s, "p:99999", b"v", None).await;
        }
        paged.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    let mut want = keys.clone();
    want.push("p:99999".into());
    assert_eq!(paged, want);
    let (page, next) = ok("list_page", s.list_page("p:", Some("p:99999"), 10).await);
    assert!(page.is_empty() && next.is_none());
    let streamed: Vec<String> = s.scan("p:").map(|k| k.expect("scan")).collect().await;
    assert_eq!(streamed, list(&*s, "p:").await);
    assert_eq!(streamed.len(), 2_502);
}

/// `entries_page` walks the listing's pages with each key's value and
/// TTL, leaves expired keys out, and stays inside the prefix.
pub async fn entries_pages(h: &dyn Harness) {
    let s = open(h, "entries").await;
    let keys: Vec<String> = (0..25).map(|i| format!("e:{i:02}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let ttl = (i % 2 == 1).then_some(LONG_TTL);
        set(&*s, key, format!("value {i}").as_bytes(), ttl).await;
    }
    set(&*s, "e:short", b"gone soon", Some(SHORT_TTL)).await;
    set(&*s, "e", b"before the prefix", None).await;
    set(&*s, "f", b"after it", None).await;
    h.advance(PAST_SHORT_TTL).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = ok(
            "entries_page",
            s.entries_page("e:", cursor.as_deref(), 10).await,
        );
        assert!(page.len() <= 10, "a page holds at most its limit");
        seen.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(seen.len() <= 30, "paging must end");
    }
    let got: Vec<&str> = seen.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(got, keys, "every live key under the prefix, in order, once");
    for (i, entry) in seen.iter().enumerate() {
        assert_eq!(
            entry.value,
            format!("value {i}").as_bytes(),
            "{}",
            entry.key
        );
        match entry.ttl {
            None => assert_eq!(i % 2, 0, "{} has a TTL", entry.key),
            Some(left) => {
                assert_eq!(i % 2, 1, "{} has no TTL", entry.key);
                assert!(
                    left <= LONG_TTL && left > LONG_TTL - Duration::from_secs(60),
                    "{}: {left:?} left of {LONG_TTL:?}",
                    entry.key
                );
            }
        }
    }
    let (page, next) = ok("entries_page", s.entries_page("e:", Some("e:24"), 10).await);
    assert!(
        page.is_empty() && next.is_none(),
        "nothing after the last key"
    );
}

/// `delete_prefix` and `clear` stay inside the namespace.
pub async fn delete_prefix_and_clear(h: &dyn Harness) {
    let s = open(h, "bulk").await;
    let neighbours = [
        open(h, "bulk2").await,
        open(h, "bulk:x").await,
        open(h, "bul").await,
    ];
    for store in neighbours.iter().chain(std::iter::once(&s)) {
        for key in ["a1", "a2", "ab", "b1"] {
            set(&**store, key, b"v", None).await;
        }
    }
    set(&*s, "a-ttl", b"v", Some(SHORT_TTL)).await;
    h.advance(PAST_SHORT_TTL).await;
    assert_eq!(
        ok("delete_prefix", s.delete_prefix("a").await),
        3,
        "expired keys are not counted"
    );
    assert_listing(&*s, "", &["b1"]).await;
    set(&*s, "c", b"v", None).await;
    assert_eq!(ok("clear", s.clear().await), 2);
    assert_listing(&*s, "", &[]).await;
    for store in &neighbours {
        assert_eq!(
            list(&**store, "").await,
            vec!["a1", "a2", "ab", "b1"],
            "a neighbour namespace lost keys"
        );
    }
}

/// Load: `tasks` tasks × `operations` mixed sets, deletes and gets (each
/// task on keys of its own, checked against its own model as it goes);
/// no error, and the store ends holding exactly the keys the models hold.
/// Not in the conformance list: the networked backends' own test files run
/// it at the size their issue asks (64 × 2,000).
pub async fn load(h: &dyn Harness, tasks: u64, operations: u64) {
    let store = open(h, "load").await;
    let mut running = Vec::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        running.push(tokio::spawn(async move {
            let mut model = BTreeMap::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
            for i in 0..operations {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = format!("t{t:03}:{}", seed % 32);
                match seed % 5 {
                    0 | 1 => {
                        let value = format!("{t}-{i}");
                        ok("set", store.set(&key, value.as_bytes(), None).await);
                        model.insert(key, value);
                    }
                    2 => {
                        ok("delete", store.delete(&key).await);
                        model.remove(&key);
                    }
                    _ => {
                        let got = get(&*store, &key)
                            .await
                            .map(|v| String::from_utf8_lossy(&v).into_owned());
                        assert_eq!(got.as_ref(), model.get(&key), "task {t} read {key}");
                    }
                }
            }
            model
        }));
    }
    let mut want = Vec::new();
    for task in running {
        match task.await {
            Ok(model) => want.extend(model.into_keys()),
            Err(e) => panic!("a load task failed: {e}"),
        }
    }
    want.sort();
    assert_eq!(list(&*store, "t").await, want);
}
