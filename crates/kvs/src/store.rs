//! The [`Store`] trait: the one API every backend implements.

use crate::Result;
use bytes::Bytes;
use std::sync::Arc;
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
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The value of `key`, or [`Error::NotFound`](crate::Error::NotFound) if
    /// it is absent or expired.
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Stores `value` under `key`, replacing any value and TTL it had.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()>;

    /// Removes `key`; `Ok(())` if it was absent.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Whether `key` is present and unexpired.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// The unexpired keys starting with `prefix` (`""` = all), sorted by byte order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// The number of keys `list(prefix)` would return.
    async fn count(&self, prefix: &str) -> Result<usize>;

    /// Closes the store: stops background work and releases files, locks
    /// and connections. Closing again is `Ok(())`.
    async fn close(&self) -> Result<()>;
}

/// Forwards every method, so an `Arc<S>` (and `Arc<dyn Store>`) is a `Store` too.
#[async_trait::async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn get(&self, key: &str) -> Result<Bytes> {
        (**self).get(key).await
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        (**self).set(key, value, ttl).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        (**self).exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        (**self).list(prefix).await
    }
    async fn count(&self, prefix: &str) -> Result<usize> {
        (**self).count(prefix).await
    }
    async fn close(&self) -> Result<()> {
        (**self).close().await
    }
}
