//! The [`Store`] trait: the one API every backend implements, and
//! [`StoreFuture`], the future its methods return.

use crate::Result;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// An async key-value store opened for one namespace.
///
/// # Contract
///
/// Every backend behaves the same way; the conformance suite in
/// `kvs::testkit` checks each point below on each backend.
///
/// - **Keys** are non-empty UTF-8 strings of at most
///   [`MAX_KEY_LEN`](crate::key::MAX_KEY_LEN) bytes, else
///   [`Error::InvalidKey`](crate::Error::InvalidKey). They are matched byte
///   for byte: `*`, `?`, `[`, `%`, `_`, `\` and `:` are ordinary characters,
///   and case matters.
/// - **Values** are any bytes, including none. A value the backend cannot
///   hold gives [`Error::ValueTooLarge`](crate::Error::ValueTooLarge) and
///   leaves the old value in place.
/// - **TTL**: `None` or `Some(Duration::ZERO)` never expires; otherwise the
///   key lives at least `ttl` (millisecond precision, rounded up) and at
///   most about a millisecond longer. An expired key is gone for `get`,
///   `exists`, `list` and `count` at once, whatever the backend's own
///   clean-up lag. Setting a key again replaces its value and its TTL.
/// - **Listing**: `list` returns the unexpired keys that start with the
///   prefix (`""` = all), without the namespace, sorted by byte order, with
///   no duplicates; `count` equals `list(prefix).len()`.
/// - **Namespaces** never see each other's keys.
/// - **Close**: afterwards every call returns
///   [`Error::Closed`](crate::Error::Closed), and `close` again is `Ok`.
///   Calls racing with `close` either complete or return `Closed`.
/// - **Sharing**: any number of tasks may use one `Arc<dyn Store>`.
///
/// # Why the methods return [`StoreFuture`]
///
/// The methods are async, and callers simply `.await` them. They return a
/// [`StoreFuture`] rather than being `async fn`s so that `Arc<dyn Store>`
/// works without boxing every call: a backend that answers at once (the
/// memory store) returns [`StoreFuture::ready`], which allocates nothing,
/// and one that waits for I/O returns [`StoreFuture::boxed`]. (A boxed
/// future per call, as `#[async_trait]` makes, costs the memory store about
/// 40% of its `get` throughput.)
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::time::Duration;
/// use kvs::{BackendKind, Config, Error};
///
/// let store = kvs::open(&Config::new(BackendKind::Memory)).await?;
/// store.set("session:42", b"{\"user\":\"ada\"}", Some(Duration::from_secs(1800))).await?;
/// assert_eq!(&store.get("session:42").await?[..], b"{\"user\":\"ada\"}");
/// assert_eq!(store.list("session:").await?, vec!["session:42"]);
/// store.delete("session:42").await?;
/// assert!(matches!(store.get("session:42").await, Err(Error::NotFound)));
/// store.close().await?;
/// # Ok(())
/// # }
/// ```
///
/// # Implementing a backend
///
/// ```
/// use std::time::Duration;
/// use kvs::{Bytes, Error, Store, StoreFuture};
///
/// /// A store that holds nothing (a real one would talk to its engine).
/// struct Nothing;
///
/// impl Store for Nothing {
///     fn get<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Bytes> {
///         StoreFuture::ready(Err(Error::NotFound))
///     }
///     fn set<'a>(&'a self, _key: &'a str, _value: &'a [u8], _ttl: Option<Duration>) -> StoreFuture<'a, ()> {
///         // Work that awaits goes in a boxed async block.
///         StoreFuture::boxed(async move { Ok(()) })
///     }
///     fn delete<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, ()> {
///         StoreFuture::ready(Ok(()))
///     }
///     fn exists<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, bool> {
///         StoreFuture::ready(Ok(false))
///     }
///     fn list<'a>(&'a self, _prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
///         StoreFuture::ready(Ok(Vec::new()))
///     }
///     fn count<'a>(&'a self, _prefix: &'a str) -> StoreFuture<'a, usize> {
///         StoreFuture::ready(Ok(0))
///     }
///     fn close(&self) -> StoreFuture<'_, ()> {
///         StoreFuture::ready(Ok(()))
///     }
/// }
/// ```
pub trait Store: Send + Sync {
    /// The value of `key`, or [`Error::NotFound`](crate::Error::NotFound) if
    /// it is absent or expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes>;

    /// Stores `value` under `key`, replacing any value and TTL it had.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;

    /// Removes `key`; `Ok(())` if it was absent.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Whether `key` is present and unexpired.
    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;

    /// The unexpired keys starting with `prefix` (`""` = all), sorted by byte order.
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// The number of keys `list(prefix)` would return.
    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize>;

    /// Closes the store: stops background work and releases files, locks
    /// and connections. Closing again is `Ok(())`.
    fn close(&self) -> StoreFuture<'_, ()>;

    /// The time `key` has left: `None` if it never expires,
    /// [`Error::NotFound`](crate::Error::NotFound) if it is absent or expired.
    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        let _ = key;
        unsupported("ttl")
    }

    // ---- batches ------------------------------------------------------

    /// The values of `keys`, in request order (`None` for absent or
    /// expired keys; a key asked twice is answered twice).
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        StoreFuture::boxed(async move {
            validate_all(keys.iter().copied())?;
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(optional(self.get(key).await)?);
            }
            Ok(values)
        })
    }

    /// Stores every `(key, value)` with the same `ttl`. Every key is checked
    /// before anything is written. A key given twice ends with its last value.
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            validate_all(entries.iter().map(|(k, _)| *k))?;
            for (key, value) in entries {
                self.set(key, value, ttl).await?;
            }
            Ok(())
        })
    }

    /// Removes `keys`; returns how many of them were present (a key given
    /// twice counts once).
    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        StoreFuture::boxed(async move {
            validate_all(keys.iter().copied())?;
            let mut seen = std::collections::HashSet::new();
            let mut deleted = 0;
            for key in keys {
                if seen.insert(*key) && self.exists(key).await? {
                    self.delete(key).await?;
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
    }

    // ---- atomic operations -------------------------------------------

    /// Stores `value` only if `key` is absent or expired; returns whether it
    /// did. A lock: the first caller wins, atomically, across processes
    /// sharing the backend.
    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let _ = (key, value, ttl);
        unsupported("set_if_absent")
    }

    /// Replaces the value of `key` with `new` only if it currently is
    /// `expected` (`None`: absent or expired); returns whether it did.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        let _ = (key, expected, new, ttl);
        unsupported("compare_and_swap")
    }

    /// Adds `delta` to the decimal integer stored at `key` (a missing key
    /// counts as 0) and returns the result; the key keeps its TTL. A value
    /// that is not a decimal `i64`, or an overflow, is
    /// [`Error::InvalidValue`](crate::Error::InvalidValue) and changes nothing.
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        let _ = (key, delta);
        unsupported("increment")
    }

    // ---- TTL control -------------------------------------------------

    /// Gives `key` a new TTL without rewriting its value (`ZERO` removes
    /// the TTL); [`Error::NotFound`](crate::Error::NotFound) if absent.
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        let _ = (key, ttl);
        unsupported("expire")
    }

    /// Removes the TTL of `key`; [`Error::NotFound`](crate::Error::NotFound)
    /// if absent.
    fn persist<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.expire(key, Duration::ZERO)
    }

    // ---- listing in pages --------------------------------------------

    /// Up to `limit` keys starting with `prefix` and sorting after
    /// `start_after`, in byte order, and the cursor for the next page
    /// (`None` after the last). Pages stay consistent while keys change: a
    /// key is on at most one page, and a key present throughout is on one.
    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        let _ = (prefix, start_after, limit);
        unsupported("list_page")
    }

    /// Every key starting with `prefix`, in byte order, as a stream that
    /// reads one page at a time and never holds every key.
    fn scan<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        const PAGE: usize = 1000;
        type State = (Vec<String>, Option<String>, bool);
        let start: State = (Vec::new(), None, false);
        Box::pin(futures_util::stream::unfold(
            start,
            move |(mut page, cursor, done)| async move {
                if page.is_empty() {
                    if done {
                        return None;
                    }
                    match self.list_page(prefix, cursor.as_deref(), PAGE).await {
                        Ok((keys, next)) => {
                            let finished = next.is_none();
                            page = keys;
                            page.reverse();
                            let cursor = next;
                            let key = page.pop()?;
                            return Some((Ok(key), (page, cursor, finished)));
                        }
                        Err(e) => return Some((Err(e), (Vec::new(), None, true))),
                    }
                }
                let key = page.pop()?;
                Some((Ok(key), (page, cursor, done)))
            },
        ))
    }

    // ---- bulk delete -------------------------------------------------

    /// Removes every key starting with `prefix` in this namespace; returns
    /// how many live keys there were. Never touches another namespace.
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        StoreFuture::boxed(async move {
            let mut deleted = 0;
            loop {
                let (keys, _) = self.list_page(prefix, None, 1000).await?;
                if keys.is_empty() {
                    return Ok(deleted);
                }
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                deleted += self.delete_many(&keys).await?;
            }
        })
    }

    /// Removes every key of this namespace; returns how many there were.
    fn clear(&self) -> StoreFuture<'_, usize> {
        self.delete_prefix("")
    }
}

/// In a method returning a [`StoreFuture`]: returns the error of `$check`
/// as a ready future, before any work starts. (Used by the backends that
/// are cargo features.)
#[cfg_attr(
    not(any(feature = "sqlite", feature = "leveldb", feature = "redis")),
    allow(unused_macros)
)]
macro_rules! check {
    ($check:expr) => {
        if let Err(e) = $check {
            return $crate::StoreFuture::ready(Err(e));
        }
    };
}
#[cfg_attr(
    not(any(feature = "sqlite", feature = "leveldb", feature = "redis")),
    allow(unused_imports)
)]
pub(crate) use check;

/// The stream [`Store::scan`] returns.
pub type KeyStream<'a> = Pin<Box<dyn futures_core::Stream<Item = Result<String>> + Send + 'a>>;

fn unsupported<'a, T>(operation: &str) -> StoreFuture<'a, T> {
    StoreFuture::ready(Err(crate::Error::Unsupported {
        message: format!("this store does not implement {operation}"),
    }))
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
        crate::key::validate_key(key)?;
    }
    Ok(())
}

/// The value [`Store::increment`] stores: the decimal integer in
/// `current` (`None`: absent, counts as 0) plus `delta`. A value that is
/// not an ASCII decimal `i64` (as Redis's `INCRBY` reads it), or an
/// overflow, is `InvalidValue`.
pub(crate) fn next_counter(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64> {
    let invalid = |reason: String| crate::Error::InvalidValue {
        key: key.to_owned(),
        reason,
    };
    let count = match current {
        None => 0,
        Some(value) => std::str::from_utf8(value)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| {
                invalid("is not a decimal 64-bit integer, so it cannot be incremented".into())
            })?,
    };
    count
        .checked_add(delta)
        .ok_or_else(|| invalid(format!("{count} + {delta} overflows a 64-bit integer")))
}

/// `Ok(None)` for `NotFound`.
pub(crate) fn optional<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(crate::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The future returned by [`Store`]'s methods: `.await` it for the result.
///
/// It is `Send`, and either already holds its result
/// ([`StoreFuture::ready`], no allocation) or wraps a boxed future
/// ([`StoreFuture::boxed`]).
#[must_use = "a StoreFuture does nothing unless awaited"]
pub struct StoreFuture<'a, T>(Repr<'a, T>);

enum Repr<'a, T> {
    /// `None` once the result has been handed out.
    Ready(Option<Result<T>>),
    Boxed(Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// A future that is already complete.
    pub fn ready(result: Result<T>) -> StoreFuture<'a, T> {
        StoreFuture(Repr::Ready(Some(result)))
    }

    /// A future that runs `future`.
    pub fn boxed(future: impl Future<Output = Result<T>> + Send + 'a) -> StoreFuture<'a, T> {
        StoreFuture(Repr::Boxed(Box::pin(future)))
    }
}

// Never pins a `T`: a ready result is moved out, and a boxed future is
// pinned by its box.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match &mut self.get_mut().0 {
            Repr::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                None => panic!("StoreFuture polled after it completed"),
            },
            Repr::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> std::fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            Repr::Ready(Some(_)) => "ready",
            Repr::Ready(None) => "done",
            Repr::Boxed(_) => "pending",
        };
        f.debug_tuple("StoreFuture").field(&state).finish()
    }
}

/// Forwards every method, so an `Arc<S>` (and `Arc<dyn Store>`) is a `Store` too.
impl<S: Store + ?Sized> Store for Arc<S> {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        (**self).get(key)
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        (**self).set(key, value, ttl)
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        (**self).delete(key)
    }
    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        (**self).exists(key)
    }
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        (**self).list(prefix)
    }
    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        (**self).count(prefix)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        (**self).close()
    }
    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        (**self).ttl(key)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        (**self).get_many(keys)
    }
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        (**self).set_many(entries, ttl)
    }
    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        (**self).delete_many(keys)
    }
    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        (**self).set_if_absent(key, value, ttl)
    }
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        (**self).compare_and_swap(key, expected, new, ttl)
    }
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        (**self).increment(key, delta)
    }
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        (**self).expire(key, ttl)
    }
    fn persist<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        (**self).persist(key)
    }
    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        (**self).list_page(prefix, start_after, limit)
    }
    fn scan<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        (**self).scan(prefix)
    }
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        (**self).delete_prefix(prefix)
    }
    fn clear(&self) -> StoreFuture<'_, usize> {
        (**self).clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store: Arc<dyn Store> =
            Arc::new(crate::MemoryStore::new("t", Default::default()).unwrap());
        assert_send(&store.get("k"));
        assert_send(&store.list(""));
    }
}
