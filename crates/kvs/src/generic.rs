//! Operations built from other [`Store`] calls, for backend authors.
//!
//! A backend calls one of these on purpose, from its own impl of the
//! method, when its engine has nothing better: the loop is then visible at
//! the call site instead of hiding in a trait default. Users of kvs never
//! need this module.
//!
//! [`parse_counter`] is the one reading of a stored counter that every
//! backend shares (Redis's `INCRBY` reads the same way on the server).

use crate::key::validate_key;
use crate::{Entry, Error, KeyStream, Result, Store, StoreFuture};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// `get_many` as one `get` per key, in order. Every key is checked first.
pub fn get_many_each<'a, S: Store + ?Sized>(
    store: &'a S,
    keys: &'a [&'a str],
) -> StoreFuture<'a, Vec<Option<Bytes>>> {
    StoreFuture::boxed(async move {
        validate_all(keys.iter().copied())?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(optional(store.get(key).await)?);
        }
        Ok(values)
    })
}

/// `set_many` as one `set` per entry, in order (so the last of a repeated
/// key wins). Every key is checked before anything is written; the writes
/// are not atomic as a whole.
pub fn set_many_each<'a, S: Store + ?Sized>(
    store: &'a S,
    entries: &'a [(&'a str, &'a [u8])],
    ttl: Option<Duration>,
) -> StoreFuture<'a, ()> {
    StoreFuture::boxed(async move {
        validate_all(entries.iter().map(|(k, _)| *k))?;
        for (key, value) in entries {
            store.set(key, value, ttl).await?;
        }
        Ok(())
    })
}

/// `delete_many` as `exists` and `delete` per distinct key. Every key is
/// checked first.
pub fn delete_many_each<'a, S: Store + ?Sized>(
    store: &'a S,
    keys: &'a [&'a str],
) -> StoreFuture<'a, usize> {
    StoreFuture::boxed(async move {
        validate_all(keys.iter().copied())?;
        let mut seen = std::collections::HashSet::new();
        let mut deleted = 0;
        for key in keys {
            if seen.insert(*key) && store.exists(key).await? {
                store.delete(key).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    })
}

/// `delete_prefix` as pages of 1,000 keys from `list_page`, each removed
/// with `delete_many`, until a page comes back empty.
pub fn delete_prefix_by_pages<'a, S: Store + ?Sized>(
    store: &'a S,
    prefix: &'a str,
) -> StoreFuture<'a, usize> {
    StoreFuture::boxed(async move {
        let mut deleted = 0;
        loop {
            let (keys, _) = store.list_page(prefix, None, PAGE).await?;
            if keys.is_empty() {
                return Ok(deleted);
            }
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            deleted += store.delete_many(&keys).await?;
        }
    })
}

/// Keys a page in [`scan_by_pages`] and [`delete_prefix_by_pages`].
const PAGE: usize = 1000;

/// `scan` as pages of 1,000 keys from `list_page`: what
/// [`Store::scan`] does unless a backend overrides it.
pub fn scan_by_pages<'a, S: Store + ?Sized>(store: &'a S, prefix: &'a str) -> KeyStream<'a> {
    type State = (Vec<String>, Option<String>, bool);
    let start: State = (Vec::new(), None, false);
    Box::pin(futures_util::stream::unfold(
        start,
        move |(mut page, cursor, done)| async move {
            if page.is_empty() {
                if done {
                    return None;
                }
                match store.list_page(prefix, cursor.as_deref(), PAGE).await {
                    Ok((keys, next)) => {
                        let finished = next.is_none();
                        page = keys;
                        page.reverse();
                        let key = page.pop()?;
                        return Some((Ok(key), (page, next, finished)));
                    }
                    Err(e) => return Some((Err(e), (Vec::new(), None, true))),
                }
            }
            let key = page.pop()?;
            Some((Ok(key), (page, cursor, done)))
        },
    ))
}

/// `entries_page` as `list_page`, one `get_many` and concurrent `ttl`
/// calls: what [`Store::entries_page`] does unless a backend overrides it.
/// A key gone between the listing and the reads is left out.
pub fn entries_page_by_keys<'a, S: Store + ?Sized>(
    store: &'a S,
    prefix: &'a str,
    start_after: Option<&'a str>,
    limit: usize,
) -> StoreFuture<'a, (Vec<Entry>, Option<String>)> {
    StoreFuture::boxed(async move {
        let (keys, next) = store.list_page(prefix, start_after, limit).await?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = values_and_ttls(store, &refs).await?;
        let entries = keys
            .into_iter()
            .zip(found)
            .filter_map(|(key, found)| {
                let (value, ttl) = found?;
                Some(Entry { key, value, ttl })
            })
            .collect();
        Ok((entries, next))
    })
}

/// The value and time left of each of `keys`, in order: one `get_many`,
/// then concurrent `ttl` calls for the keys found. `None` for a key that is
/// absent, or that expired between the two reads.
pub(crate) async fn values_and_ttls<S: Store + ?Sized>(
    store: &S,
    keys: &[&str],
) -> Result<Vec<Option<(Bytes, Option<Duration>)>>> {
    let values = store.get_many(keys).await?;
    let ttls = futures_util::future::try_join_all(keys.iter().zip(&values).map(
        |(key, value)| async move {
            match value {
                Some(_) => optional(store.ttl(key).await),
                None => Ok(None),
            }
        },
    ))
    .await?;
    Ok(values
        .into_iter()
        .zip(ttls)
        .map(|(value, ttl)| Some((value?, ttl?)))
        .collect())
}

/// Writes `entries`, each with its own TTL, as one `set_many` per distinct
/// TTL, sent concurrently; returns how many distinct keys were written.
///
/// A key given twice ends with its last entry, as within one `set_many`.
/// A TTL of zero (an entry read with no time left) becomes one millisecond,
/// because `Some(Duration::ZERO)` means "never" to `set_many`. The writes
/// are not atomic as a whole: on an error, some groups may have landed.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use kvs::{raw::set_entries, Entry, MemoryConfig, MemoryStore, Store};
///
/// let store = MemoryStore::new("app", MemoryConfig::default())?;
/// let entry = |key: &str, value: &'static [u8], ttl| Entry {
///     key: key.into(),
///     value: value.into(),
///     ttl,
/// };
/// let written = set_entries(&store, &[
///     entry("a", b"1", None),
///     entry("b", b"2", Some(Duration::from_secs(60))),
///     entry("a", b"3", None),
/// ]).await?;
/// assert_eq!(written, 2);
/// assert_eq!(store.get("a").await?, b"3"[..]);
/// assert!(store.ttl("b").await?.is_some());
/// # Ok::<(), kvs::Error>(()) }).unwrap();
/// ```
pub async fn set_entries<S: Store + ?Sized>(store: &S, entries: &[Entry]) -> Result<usize> {
    let mut last = std::collections::HashMap::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        last.insert(entry.key.as_str(), i);
    }
    let mut by_ttl: BTreeMap<Option<Duration>, Vec<(&str, &[u8])>> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        if last.get(entry.key.as_str()) != Some(&i) {
            continue;
        }
        let ttl = entry.ttl.map(|t| t.max(Duration::from_millis(1)));
        by_ttl
            .entry(ttl)
            .or_default()
            .push((entry.key.as_str(), entry.value.as_ref()));
    }
    futures_util::future::try_join_all(
        by_ttl
            .iter()
            .map(|(ttl, group)| store.set_many(group, *ttl)),
    )
    .await?;
    Ok(last.len())
}

/// A stored counter, read exactly as Redis's `INCRBY` reads one
/// (`string2ll`): an optional `-`, then `0` alone or a digit `1`–`9`
/// followed by digits, within `i64`. `+7`, `007`, `-0`, ` 7` and `7 ` are
/// not counters.
///
/// ```
/// use kvs::raw::parse_counter;
///
/// assert_eq!(parse_counter(b"42"), Some(42));
/// assert_eq!(parse_counter(b"-9223372036854775808"), Some(i64::MIN));
/// for not_a_counter in [&b"+7"[..], b"007", b"-0", b" 7", b"", b"-", b"1e3"] {
///     assert_eq!(parse_counter(not_a_counter), None);
/// }
/// ```
pub fn parse_counter(value: &[u8]) -> Option<i64> {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    let canonical = match digits {
        [b'0'] => digits.len() == value.len(), // "0", never "-0"
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    // ASCII digits and a sign: valid UTF-8, and `i64`'s parser checks the range.
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The value [`Store::increment`] stores: the counter in `current`
/// (`None`: absent, counts as 0) plus `delta`. A value that is not a
/// counter (see [`parse_counter`]), or an overflow, is `InvalidValue`.
pub(crate) fn next_counter(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64> {
    let invalid = |reason: String| Error::InvalidValue {
        key: key.to_owned(),
        reason,
    };
    let count = match current {
        None => 0,
        Some(value) => parse_counter(value).ok_or_else(|| {
            invalid("is not a decimal 64-bit integer, so it cannot be incremented".into())
        })?,
    };
    count
        .checked_add(delta)
        .ok_or_else(|| invalid(format!("{count} + {delta} overflows a 64-bit integer")))
}

/// `entries` with each key once, holding its last value, in the order of
/// those last occurrences: what a batch that writes concurrently (or that
/// the server refuses with repeated keys) sends to keep "last wins".
#[cfg_attr(not(any(feature = "redis", feature = "dynamodb")), allow(dead_code))]
pub(crate) fn last_of_each<'e>(entries: &[(&'e str, &'e [u8])]) -> Vec<(&'e str, &'e [u8])> {
    let mut last = std::collections::HashMap::with_capacity(entries.len());
    for (i, (key, _)) in entries.iter().enumerate() {
        last.insert(*key, i);
    }
    entries
        .iter()
        .enumerate()
        .filter(|(i, (key, _))| last.get(key) == Some(i))
        .map(|(_, entry)| *entry)
        .collect()
}

pub(crate) fn validate_all<'k>(keys: impl Iterator<Item = &'k str>) -> Result<()> {
    for key in keys {
        validate_key(key)?;
    }
    Ok(())
}

/// `Ok(None)` for `NotFound`.
pub(crate) fn optional<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every `i64` reads back from its own decimal text, and nothing
        /// else that `str::parse` would take (a `+`, leading zeros) does.
        #[test]
        fn counters_round_trip_through_their_text(n: i64) {
            prop_assert_eq!(parse_counter(n.to_string().as_bytes()), Some(n));
            prop_assert_eq!(parse_counter(format!("+{n}").as_bytes()), None);
            prop_assert_eq!(parse_counter(format!("0{}", n.unsigned_abs()).as_bytes()), None);
        }

        /// Whatever the bytes, a counter is exactly the canonical text of an `i64`.
        #[test]
        fn only_canonical_text_is_a_counter(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Some(n) = parse_counter(&bytes) {
                prop_assert_eq!(n.to_string().into_bytes(), bytes);
            }
        }
    }

    #[test]
    fn out_of_range_counters_are_refused() {
        assert_eq!(parse_counter(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_counter(b"9223372036854775808"), None);
        assert_eq!(parse_counter(b"-9223372036854775809"), None);
    }
}
