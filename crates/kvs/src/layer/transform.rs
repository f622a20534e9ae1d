//! The store behind every layer that changes values on their way to the
//! backend and back (compression, encryption): written once, so that each
//! such layer only says how a value is encoded and decoded.

use crate::forward::{forward_documents, forward_store};
use crate::generic::next_counter;
use crate::{Bytes, DocumentStore, Entry, Error, Result, Store, StoreFuture};
use std::borrow::Cow;
use std::time::Duration;

/// A reversible change to values, applied by a [`TransformStore`]: what a
/// value-transforming layer (compression, encryption, one of your own) is.
///
/// `decode(key, encode(key, v))` must give `v` back for every key and
/// value. Keys, TTLs, listing and documents are never transformed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::borrow::Cow;
/// use kvs::layer::{TransformStore, ValueTransform};
/// use kvs::{Bytes, Store};
///
/// /// Stores every value reversed (a toy; a real one would do better).
/// struct Reverse;
///
/// impl ValueTransform for Reverse {
///     fn encode<'v>(&self, _key: &str, value: &'v [u8]) -> kvs::Result<Cow<'v, [u8]>> {
///         Ok(value.iter().rev().copied().collect::<Vec<u8>>().into())
///     }
///     fn decode(&self, _key: &str, stored: Bytes) -> kvs::Result<Bytes> {
///         Ok(stored.iter().rev().copied().collect::<Vec<u8>>().into())
///     }
///     fn keeps_counters(&self) -> bool {
///         false
///     }
/// }
///
/// let bare = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
/// let store = TransformStore::new(bare.clone(), Reverse);
/// store.set("k", b"abc", None).await?;
/// assert_eq!(bare.get("k").await?, &b"cba"[..]);
/// assert_eq!(store.get("k").await?, &b"abc"[..]);
/// assert_eq!(store.increment("n", 12).await?, 12);
/// assert_eq!(bare.get("n").await?, &b"21"[..]);
/// # Ok(())
/// # }
/// ```
pub trait ValueTransform: Send + Sync + 'static {
    /// The bytes to store for `value` under `key`.
    fn encode<'v>(&self, key: &str, value: &'v [u8]) -> Result<Cow<'v, [u8]>>;

    /// The value that `stored`, read from `key`, holds.
    fn decode(&self, key: &str, stored: Bytes) -> Result<Bytes>;

    /// Whether a decimal counter is stored as itself, so that `increment`
    /// can go straight to the backend's atomic increment. If not, the
    /// store increments by `compare_and_swap` (read, add, swap, and again
    /// if another writer came first).
    fn keeps_counters(&self) -> bool;
}

/// A store whose values pass through a [`ValueTransform`] on every write
/// (`set`, `set_many`, `set_if_absent`, `compare_and_swap`, `increment`)
/// and every read (`get`, `get_many`, `entries_page`).
///
/// `compare_and_swap` compares the expected value with the stored one
/// decoded, then swaps against the exact stored bytes, so it stays atomic
/// although one value may be stored in more than one form.
#[derive(Debug, Clone)]
pub struct TransformStore<S, T> {
    inner: S,
    transform: T,
}

impl<S, T> TransformStore<S, T> {
    /// `inner`, with its values changed by `transform`.
    pub fn new(inner: S, transform: T) -> TransformStore<S, T> {
        TransformStore { inner, transform }
    }

    /// The transform this store applies.
    pub fn transform(&self) -> &T {
        &self.transform
    }
}

impl<S: Store, T: ValueTransform> TransformStore<S, T> {
    /// The stored bytes of `key` (`None`: absent), and the value they hold.
    async fn read(&self, key: &str) -> Result<Option<(Bytes, Bytes)>> {
        match self.inner.get(key).await {
            Ok(stored) => Ok(Some((stored.clone(), self.transform.decode(key, stored)?))),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `increment` as read, add and `compare_and_swap`, for transforms
    /// that do not store counters as themselves.
    ///
    /// The stored bytes are compared, so a swap succeeds only if no write
    /// came in between; the TTL read in between is put back (a key with a
    /// TTL keeps its expiry time, to the millisecond). An `expire` racing
    /// with the increment may be undone by it.
    async fn increment_by_swap(&self, key: &str, delta: i64) -> Result<i64> {
        loop {
            let current = self.read(key).await?;
            let next = next_counter(key, current.as_ref().map(|(_, v)| &v[..]), delta)?;
            let text = next.to_string();
            let new = self.transform.encode(key, text.as_bytes())?;
            let (expected, ttl) = match &current {
                None => (None, None),
                Some((stored, _)) => match self.inner.ttl(key).await {
                    // A TTL that has just run out must not become "never".
                    Ok(ttl) => (
                        Some(&stored[..]),
                        ttl.map(|t| t.max(Duration::from_millis(1))),
                    ),
                    Err(Error::NotFound) => continue,
                    Err(e) => return Err(e),
                },
            };
            if self
                .inner
                .compare_and_swap(key, expected, &new, ttl)
                .await?
            {
                return Ok(next);
            }
        }
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: Store, T: ValueTransform> Store for TransformStore<S, T> {
    forward_store!(|this| this.inner;
        delete, exists, list, count, close, ttl, delete_many,
        expire, persist, list_page, scan, delete_prefix, clear);

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        StoreFuture::boxed(async move { self.transform.decode(key, self.inner.get(key).await?) })
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        StoreFuture::boxed(async move {
            self.transform
                .decode(key, self.inner.get_and_touch(key, ttl).await?)
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            let stored = self.transform.encode(key, value)?;
            self.inner.set(key, &stored, ttl).await
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        StoreFuture::boxed(async move {
            let values = self.inner.get_many(keys).await?;
            keys.iter()
                .zip(values)
                .map(|(key, value)| value.map(|v| self.transform.decode(key, v)).transpose())
                .collect()
        })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move {
            let stored = entries
                .iter()
                .map(|(key, value)| Ok((*key, self.transform.encode(key, value)?)))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<(&str, &[u8])> = stored.iter().map(|(k, v)| (*k, v.as_ref())).collect();
            self.inner.set_many(&refs, ttl).await
        })
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            let stored = self.transform.encode(key, value)?;
            self.inner.set_if_absent(key, &stored, ttl).await
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::boxed(async move {
            let new = self.transform.encode(key, new)?;
            let Some(expected) = expected else {
                return self.inner.compare_and_swap(key, None, &new, ttl).await;
            };
            let Some((stored, current)) = self.read(key).await? else {
                return Ok(false);
            };
            if current != expected {
                return Ok(false);
            }
            self.inner
                .compare_and_swap(key, Some(&stored), &new, ttl)
                .await
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        if self.transform.keeps_counters() {
            return self.inner.increment(key, delta);
        }
        StoreFuture::boxed(self.increment_by_swap(key, delta))
    }

    fn entries_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<Entry>, Option<String>)> {
        StoreFuture::boxed(async move {
            let (entries, next) = self.inner.entries_page(prefix, start_after, limit).await?;
            let entries = entries
                .into_iter()
                .map(|e| {
                    Ok(Entry {
                        value: self.transform.decode(&e.key, e.value)?,
                        ..e
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((entries, next))
        })
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore, T: ValueTransform> DocumentStore for TransformStore<S, T> {
    forward_documents!(|this| this.inner);
}
