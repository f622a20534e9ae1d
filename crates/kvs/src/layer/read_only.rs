//! The read-only layer: reads pass, every write is refused.

use crate::forward::{forward_documents, forward_store};
use crate::{Bytes, Document, DocumentStore, Error, Store, StoreFuture};
use std::time::Duration;

/// Refuses every write with [`Error::ReadOnly`], before any I/O; reads
/// (`get`, `exists`, `list`, `scan`, `ttl`, `get_doc`, `query`, ...) pass
/// through. `close` passes through too: it ends the store's background
/// work and writes no data.
///
/// For handing a store to code that must not change it (a report, a
/// `kvs copy` source, a replica's readers). In a configuration file:
/// `layers: [read_only]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::layer::{LayerExt, ReadOnly};
///
/// let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
/// store.set("k", b"v", None).await?;
/// let reader = store.clone().layer(ReadOnly);
/// assert_eq!(reader.get("k").await?, &b"v"[..]);
/// let err = reader.delete("k").await.unwrap_err();
/// assert_eq!(err.to_string(), "kvs: delete refused: the store is read-only");
/// assert!(store.exists("k").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnly;

super::layer_wraps_with!(ReadOnly, |layer, inner| ReadOnlyStore::new(inner));

/// A store behind the [`ReadOnly`] layer.
#[derive(Debug, Clone)]
pub struct ReadOnlyStore<S> {
    inner: S,
}

impl<S> ReadOnlyStore<S> {
    /// `inner`, read-only.
    pub fn new(inner: S) -> ReadOnlyStore<S> {
        ReadOnlyStore { inner }
    }

    /// The store underneath, which can still write.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn refuse<'a, T>(operation: &'static str) -> StoreFuture<'a, T> {
    StoreFuture::ready(Err(Error::ReadOnly { operation }))
}

#[deny(clippy::missing_trait_methods)]
impl<S: Store> Store for ReadOnlyStore<S> {
    forward_store!(|this| this.inner;
        get, exists, list, count, close, ttl, get_many, list_page, scan, entries_page);

    fn set<'a>(&'a self, _: &'a str, _: &'a [u8], _: Option<Duration>) -> StoreFuture<'a, ()> {
        refuse("set")
    }

    fn delete<'a>(&'a self, _: &'a str) -> StoreFuture<'a, ()> {
        refuse("delete")
    }

    fn set_many<'a>(
        &'a self,
        _: &'a [(&'a str, &'a [u8])],
        _: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        refuse("set_many")
    }

    fn delete_many<'a>(&'a self, _: &'a [&'a str]) -> StoreFuture<'a, usize> {
        refuse("delete_many")
    }

    fn set_if_absent<'a>(
        &'a self,
        _: &'a str,
        _: &'a [u8],
        _: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        refuse("set_if_absent")
    }

    fn compare_and_swap<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a [u8]>,
        _: &'a [u8],
        _: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        refuse("compare_and_swap")
    }

    fn increment<'a>(&'a self, _: &'a str, _: i64) -> StoreFuture<'a, i64> {
        refuse("increment")
    }

    fn expire<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, ()> {
        refuse("expire")
    }

    fn persist<'a>(&'a self, _: &'a str) -> StoreFuture<'a, ()> {
        refuse("persist")
    }

    /// Refused: it rewrites the key's TTL.
    fn get_and_touch<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, Bytes> {
        refuse("get_and_touch")
    }

    fn delete_prefix<'a>(&'a self, _: &'a str) -> StoreFuture<'a, usize> {
        refuse("delete_prefix")
    }

    fn clear(&self) -> StoreFuture<'_, usize> {
        refuse("clear")
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore> DocumentStore for ReadOnlyStore<S> {
    forward_documents!(|this| this.inner; get_doc, query, collections);

    fn put<'a>(&'a self, _: &'a str, _: Document) -> StoreFuture<'a, ()> {
        refuse("put")
    }

    fn delete_doc<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
        refuse("delete_doc")
    }

    fn restore<'a>(&'a self, _: &'a str, _: Document) -> StoreFuture<'a, ()> {
        refuse("restore")
    }
}
