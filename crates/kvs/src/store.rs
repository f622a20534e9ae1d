//! The [`Store`] trait: the one API every backend implements.
//!
//! The future its methods return lives in `future.rs`, the forwarding
//! impls (`Arc`, `Box`, wrappers) in `forward.rs`, and the loops a backend
//! may build an operation from in [`raw`](crate::raw).

use crate::{KeyStream, StoreFuture};
use bytes::Bytes;
use std::time::Duration;

/// A key with its value and the time it has left, as
/// [`Store::entries_page`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, without the namespace.
    pub key: String,
    /// Its value.
    pub value: Bytes,
    /// The time it has left when it was read; `None`: it never expires.
    pub ttl: Option<Duration>,
}

/// An async key-value store opened for one namespace.
///
/// # Contract
///
/// Every backend behaves the same way; the conformance suite in
/// `kvs::testkit` checks each point below on each backend.
///
/// - **Keys** are non-empty UTF-8 strings of at most
///   [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes, else
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
///   [`Error::Closed`](crate::Error::Closed), even one that would have had
///   nothing to do (an empty batch), and `close` again is `Ok`. Calls
///   racing with `close` either complete or return `Closed`.
/// - **Sharing**: any number of tasks may use one `Arc<dyn Store>`.
///
/// # Required and provided methods
///
/// Every operation a backend must think about is a required method: no
/// default answers [`Error::Unsupported`](crate::Error::Unsupported) or
/// quietly loops over single-key calls. (object_store's trait docs give the
/// reason: defaults drift out of step with the backends.) A backend with
/// no native form of an operation builds it from one of the loops in
/// [`raw`](crate::raw), on purpose and visibly.
///
/// Only [`persist`](Store::persist), [`scan`](Store::scan) and
/// [`clear`](Store::clear) are provided, because each is exactly other
/// calls: `expire(key, ZERO)`, pages of `list_page`, `delete_prefix("")`.
/// A backend may still override one where it can do better (Redis scans
/// in one pass).
///
/// Wrappers (the document layer, `Arc`, `Box`) forward every method,
/// provided ones included, through one macro, so a method added to the
/// trait cannot be missed by any of them.
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
/// A backend implements every required method. This toy store holds
/// nothing, answers each call at once, and builds its batches and its bulk
/// delete from the generic loops.
///
/// ```
/// use std::time::Duration;
/// use kvs::{raw, Bytes, Error, Store, StoreFuture};
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
///     fn ttl<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Option<Duration>> {
///         StoreFuture::ready(Err(Error::NotFound))
///     }
///     fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
///         raw::get_many_each(self, keys)
///     }
///     fn set_many<'a>(
///         &'a self,
///         entries: &'a [(&'a str, &'a [u8])],
///         ttl: Option<Duration>,
///     ) -> StoreFuture<'a, ()> {
///         raw::set_many_each(self, entries, ttl)
///     }
///     fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
///         raw::delete_many_each(self, keys)
///     }
///     fn set_if_absent<'a>(
///         &'a self,
///         _key: &'a str,
///         _value: &'a [u8],
///         _ttl: Option<Duration>,
///     ) -> StoreFuture<'a, bool> {
///         StoreFuture::ready(Ok(false))
///     }
///     fn compare_and_swap<'a>(
///         &'a self,
///         _key: &'a str,
///         _expected: Option<&'a [u8]>,
///         _new: &'a [u8],
///         _ttl: Option<Duration>,
///     ) -> StoreFuture<'a, bool> {
///         StoreFuture::ready(Ok(false))
///     }
///     fn increment<'a>(&'a self, _key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
///         StoreFuture::ready(Ok(delta))
///     }
///     fn expire<'a>(&'a self, _key: &'a str, _ttl: Duration) -> StoreFuture<'a, ()> {
///         StoreFuture::ready(Err(Error::NotFound))
///     }
///     fn get_and_touch<'a>(&'a self, _key: &'a str, _ttl: Duration) -> StoreFuture<'a, Bytes> {
///         StoreFuture::ready(Err(Error::NotFound))
///     }
///     fn list_page<'a>(
///         &'a self,
///         _prefix: &'a str,
///         _start_after: Option<&'a str>,
///         _limit: usize,
///     ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
///         StoreFuture::ready(Ok((Vec::new(), None)))
///     }
///     fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
///         raw::delete_prefix_by_pages(self, prefix)
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
    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>>;

    // ---- batches ------------------------------------------------------

    /// The values of `keys`, in request order (`None` for absent or
    /// expired keys; a key asked twice is answered twice). Every key is
    /// checked before anything is read.
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>>;

    /// Stores every `(key, value)` with the same `ttl`. Every key is checked
    /// before anything is written. A key given twice ends with its last value.
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;

    /// Removes `keys`; returns how many of them were present (a key given
    /// twice counts once).
    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize>;

    // ---- atomic operations -------------------------------------------

    /// Stores `value` only if `key` is absent or expired; returns whether it
    /// did. A lock: the first caller wins, atomically, across processes
    /// sharing the backend.
    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// Replaces the value of `key` with `new` only if it currently is
    /// `expected` (`None`: absent or expired); returns whether it did.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool>;

    /// Adds `delta` to the decimal integer stored at `key` (a missing key
    /// counts as 0) and returns the result; the key keeps its TTL.
    ///
    /// A counter is read as Redis's `INCRBY` reads it, on every backend: an
    /// optional `-` and ASCII digits, with no `+`, no leading zero, no `-0`
    /// and no spaces (see [`raw::parse_counter`](crate::raw::parse_counter)).
    /// Any other value, or an overflow, is
    /// [`Error::InvalidValue`](crate::Error::InvalidValue) and changes nothing.
    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64>;

    // ---- TTL control -------------------------------------------------

    /// Gives `key` a new TTL without rewriting its value (`ZERO` removes
    /// the TTL); [`Error::NotFound`](crate::Error::NotFound) if absent.
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()>;

    /// The value of `key`, giving it a new TTL in the same step (`ZERO`
    /// removes the TTL); [`Error::NotFound`](crate::Error::NotFound) if
    /// absent or expired, and then nothing changes. Sliding expiry: a
    /// session read this way lives `ttl` past its last use.
    ///
    /// One atomic step on every backend: Redis `GETEX`, one SQLite
    /// `UPDATE … RETURNING`, one DynamoDB `UpdateItem` returning the item,
    /// one lock hold in memory and one write-thread step in LevelDB. A
    /// concurrent `set` lands wholly before or wholly after it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvs::Result<()> {
    /// use std::time::Duration;
    /// let store = kvs::open(&kvs::Config::new(kvs::BackendKind::Memory)).await?;
    /// store.set("session:42", b"ada", Some(Duration::from_secs(60))).await?;
    /// let value = store.get_and_touch("session:42", Duration::from_secs(1800)).await?;
    /// assert_eq!(&value[..], b"ada");
    /// assert!(store.ttl("session:42").await?.unwrap() > Duration::from_secs(60));
    /// # Ok(())
    /// # }
    /// ```
    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes>;

    /// Removes the TTL of `key`; [`Error::NotFound`](crate::Error::NotFound)
    /// if absent. Provided as `expire(key, Duration::ZERO)`.
    fn persist<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.expire(key, Duration::ZERO)
    }

    // ---- listing in pages --------------------------------------------

    /// Up to `limit` keys starting with `prefix` and sorting after
    /// `start_after`, in byte order, and the cursor for the next page
    /// (`None` after the last). Pages stay consistent while keys change: a
    /// key is on at most one page, and a key present throughout is on one.
    ///
    /// The cost of a page depends on the backend: O(log n + limit) on
    /// memory, SQLite, LevelDB, DynamoDB, PostgreSQL and Redis with its
    /// ordered index (`index: true`), which keep keys in order. Redis
    /// without the index keeps none, so each page there is a full `SCAN`
    /// of the server; walk every key with [`scan`](Store::scan), which
    /// scans once.
    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)>;

    /// Every key starting with `prefix`, in byte order, as a stream.
    ///
    /// Provided as pages of [`list_page`](Store::list_page), 1,000 keys a
    /// page, so it never holds every key. A backend whose pages are not
    /// cheap overrides it (Redis without the index: one `SCAN` pass and
    /// one sort of the keys, no values held).
    fn scan<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        crate::generic::scan_by_pages(self, prefix)
    }

    /// A page as [`list_page`](Store::list_page) gives it, with each key's
    /// value and remaining TTL: what [`kvs::copy`](crate::copy) and
    /// `kvs export` read. A key of the listing that expires or is deleted
    /// before its value is read is left out of the entries; the cursor is
    /// the listing's.
    ///
    /// Provided as `list_page`, `get_many` and one `ttl` per key
    /// ([`raw::entries_page_by_keys`](crate::raw::entries_page_by_keys));
    /// SQLite reads the page in one query.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvs::Result<()> {
    /// use std::time::Duration;
    /// let store = kvs::open(&kvs::Config::new(kvs::BackendKind::Memory)).await?;
    /// store.set("a", b"1", None).await?;
    /// store.set("b", b"2", Some(Duration::from_secs(60))).await?;
    /// let (entries, next) = store.entries_page("", None, 10).await?;
    /// assert_eq!((entries[0].key.as_str(), &entries[0].value[..], entries[0].ttl), ("a", &b"1"[..], None));
    /// assert!(entries[1].ttl.is_some());
    /// assert_eq!(next, None);
    /// # Ok(())
    /// # }
    /// ```
    fn entries_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<Entry>, Option<String>)> {
        crate::generic::entries_page_by_keys(self, prefix, start_after, limit)
    }

    // ---- bulk delete -------------------------------------------------

    /// Removes every key starting with `prefix` in this namespace; returns
    /// how many live keys there were. Never touches another namespace.
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize>;

    /// Removes every key of this namespace; returns how many there were.
    /// Provided as `delete_prefix("")`.
    fn clear(&self) -> StoreFuture<'_, usize> {
        self.delete_prefix("")
    }
}
