//! The limit-size layer: values over a size are refused before any I/O.

use crate::forward::{forward_documents, forward_store};
use crate::future::check;
use crate::{DocumentStore, Error, Store, StoreFuture};
use std::time::Duration;

/// Refuses a value larger than `max_value_bytes` with
/// [`Error::ValueTooLarge`] before anything is sent to the store, so the
/// old value stays and a huge value never reaches the network or the disk.
///
/// It checks the values of `set`, `set_many` (every entry, before any is
/// written), `set_if_absent` and the new value of `compare_and_swap`.
/// `increment` writes a number, never more than 20 bytes, and passes.
/// Documents pass through unchecked. In a configuration file:
/// `layers: [{ limit_size: { max_value_bytes: 1048576 } }]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::layer::{LayerExt, LimitSize};
///
/// let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?.layer(LimitSize::new(8));
/// store.set("k", b"12345678", None).await?;
/// let err = store.set("k", b"123456789", None).await.unwrap_err();
/// assert!(err.to_string().contains("value of 9 bytes"), "{err}");
/// assert_eq!(store.get("k").await?, &b"12345678"[..]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LimitSize {
    max_value_bytes: usize,
}

impl LimitSize {
    /// Values of at most `max_value_bytes` bytes pass.
    pub fn new(max_value_bytes: usize) -> LimitSize {
        LimitSize { max_value_bytes }
    }
}

super::layer_wraps_with!(LimitSize, |layer, inner| LimitSizeStore::new(inner, *layer));

/// A store behind the [`LimitSize`] layer.
#[derive(Debug, Clone)]
pub struct LimitSizeStore<S> {
    inner: S,
    limit: usize,
}

impl<S> LimitSizeStore<S> {
    /// `inner`, refusing values over `layer`'s limit.
    pub fn new(inner: S, layer: LimitSize) -> LimitSizeStore<S> {
        LimitSizeStore {
            inner,
            limit: layer.max_value_bytes,
        }
    }

    fn check(&self, key: &str, value: &[u8]) -> crate::Result<()> {
        Error::check_value_size("the limit_size layer", key, value.len(), self.limit)
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: Store> Store for LimitSizeStore<S> {
    forward_store!(|this| this.inner;
        get, delete, exists, list, count, close, ttl, get_many, delete_many, increment,
        expire, get_and_touch, persist, list_page, scan, entries_page, delete_prefix, clear);

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(self.check(key, value));
        self.inner.set(key, value, ttl)
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        for (key, value) in entries {
            check!(self.check(key, value));
        }
        self.inner.set_many(entries, ttl)
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(self.check(key, value));
        self.inner.set_if_absent(key, value, ttl)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(self.check(key, new));
        self.inner.compare_and_swap(key, expected, new, ttl)
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore> DocumentStore for LimitSizeStore<S> {
    forward_documents!(|this| this.inner);
}
