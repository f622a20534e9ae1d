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
    ///
    /// Every backend of this crate provides it; the default, for stores
    /// written elsewhere, returns
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        let _ = key;
        StoreFuture::ready(Err(crate::Error::Unsupported {
            message: "this store does not report remaining TTLs".into(),
        }))
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
