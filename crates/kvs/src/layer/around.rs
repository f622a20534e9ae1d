//! The store behind every layer that acts around each call without
//! touching its arguments (observability, retry, timeout): each layer
//! says what to do around one call, and [`AroundStore`] makes every
//! method of [`Store`](crate::Store) go through it.

use crate::forward::forward_documents;
use crate::{Bytes, Entry, StoreFuture};
use std::time::Duration;

/// Every operation a layer around calls sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Get,
    Set,
    Delete,
    Exists,
    List,
    Count,
    Close,
    Ttl,
    GetMany,
    SetMany,
    DeleteMany,
    SetIfAbsent,
    CompareAndSwap,
    Increment,
    Expire,
    GetAndTouch,
    Persist,
    ListPage,
    EntriesPage,
    DeletePrefix,
    Clear,
}

impl Operation {
    /// How many there are: `op as usize` is below this.
    pub const COUNT: usize = 21;

    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Exists => "exists",
            Operation::List => "list",
            Operation::Count => "count",
            Operation::Close => "close",
            Operation::Ttl => "ttl",
            Operation::GetMany => "get_many",
            Operation::SetMany => "set_many",
            Operation::DeleteMany => "delete_many",
            Operation::SetIfAbsent => "set_if_absent",
            Operation::CompareAndSwap => "compare_and_swap",
            Operation::Increment => "increment",
            Operation::Expire => "expire",
            Operation::GetAndTouch => "get_and_touch",
            Operation::Persist => "persist",
            Operation::ListPage => "list_page",
            Operation::EntriesPage => "entries_page",
            Operation::DeletePrefix => "delete_prefix",
            Operation::Clear => "clear",
        }
    }
}

/// What one call is, as a layer around it sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// The method.
    pub operation: Operation,
    /// The key, for the single-key methods.
    pub key: Option<&'a str>,
    /// The bytes of value the call sends.
    pub bytes_written: usize,
    /// Whether the call may be sent again after a failure whose outcome
    /// is unknown, with the same effect as sending it once.
    pub idempotent: bool,
}

impl<'a> Call<'a> {
    pub fn new(operation: Operation, key: Option<&'a str>) -> Call<'a> {
        Call {
            operation,
            key,
            bytes_written: 0,
            idempotent: true,
        }
    }

    pub fn writing(mut self, bytes: usize) -> Call<'a> {
        self.bytes_written = bytes;
        self
    }

    /// A call that must not be repeated blindly: done twice it may do
    /// something else than done once (`increment` adds twice;
    /// `set_if_absent` and `compare_and_swap` report `false` for their
    /// own earlier success).
    pub fn not_idempotent(mut self) -> Call<'a> {
        self.idempotent = false;
        self
    }
}

/// A layer that acts around each call: `make` starts the call on the
/// inner store, and may be called again (to retry).
pub(crate) trait Around: Send + Sync {
    fn around<'a, T: Measure + Send + 'a>(
        &'a self,
        call: Call<'a>,
        make: impl Fn() -> StoreFuture<'a, T> + Send + Sync + 'a,
    ) -> StoreFuture<'a, T>;
}

/// The bytes of value a result carries back.
pub(crate) trait Measure {
    fn bytes_read(&self) -> usize {
        0
    }
}

impl Measure for () {}
impl Measure for bool {}
impl Measure for usize {}
impl Measure for i64 {}
impl Measure for Option<Duration> {}
impl Measure for Vec<String> {}
impl Measure for (Vec<String>, Option<String>) {}

impl Measure for Bytes {
    fn bytes_read(&self) -> usize {
        self.len()
    }
}

impl Measure for Vec<Option<Bytes>> {
    fn bytes_read(&self) -> usize {
        self.iter().flatten().map(Bytes::len).sum()
    }
}

impl Measure for (Vec<Entry>, Option<String>) {
    fn bytes_read(&self) -> usize {
        self.0.iter().map(|e| e.value.len()).sum()
    }
}

/// A store behind a layer `L` that acts around each call (observability,
/// retry, timeout): every method goes through the layer's `around` but
/// `scan`, a stream built from `list_page` calls that do.
#[derive(Debug, Clone)]
pub struct AroundStore<S, L> {
    inner: S,
    layer: L,
}

impl<S, L> AroundStore<S, L> {
    /// `inner`, each call going through `layer`.
    pub fn new(inner: S, layer: L) -> AroundStore<S, L> {
        AroundStore { inner, layer }
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: crate::Store, L: Around> crate::Store for AroundStore<S, L> {
    fn get<'a>(&'a self, key: &'a str) -> crate::StoreFuture<'a, crate::Bytes> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Get, Some(key)), move || inner.get(key))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<std::time::Duration>,
    ) -> crate::StoreFuture<'a, ()> {
        let inner = &self.inner;
        let call = Call::new(Operation::Set, Some(key)).writing(value.len());
        self.layer.around(call, move || inner.set(key, value, ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> crate::StoreFuture<'a, ()> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Delete, Some(key)), move || {
                inner.delete(key)
            })
    }

    fn exists<'a>(&'a self, key: &'a str) -> crate::StoreFuture<'a, bool> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Exists, Some(key)), move || {
                inner.exists(key)
            })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> crate::StoreFuture<'a, Vec<String>> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::List, None), move || inner.list(prefix))
    }

    fn count<'a>(&'a self, prefix: &'a str) -> crate::StoreFuture<'a, usize> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Count, None), move || {
                inner.count(prefix)
            })
    }

    fn close(&self) -> crate::StoreFuture<'_, ()> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Close, None), move || inner.close())
    }

    fn ttl<'a>(&'a self, key: &'a str) -> crate::StoreFuture<'a, Option<std::time::Duration>> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Ttl, Some(key)), move || inner.ttl(key))
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [&'a str],
    ) -> crate::StoreFuture<'a, Vec<Option<crate::Bytes>>> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::GetMany, None), move || {
                inner.get_many(keys)
            })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<std::time::Duration>,
    ) -> crate::StoreFuture<'a, ()> {
        let inner = &self.inner;
        let bytes = entries.iter().map(|(_, v)| v.len()).sum();
        let call = Call::new(Operation::SetMany, None).writing(bytes);
        self.layer
            .around(call, move || inner.set_many(entries, ttl))
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> crate::StoreFuture<'a, usize> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::DeleteMany, None), move || {
                inner.delete_many(keys)
            })
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<std::time::Duration>,
    ) -> crate::StoreFuture<'a, bool> {
        let inner = &self.inner;
        let call = Call::new(Operation::SetIfAbsent, Some(key))
            .writing(value.len())
            .not_idempotent();
        self.layer
            .around(call, move || inner.set_if_absent(key, value, ttl))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<std::time::Duration>,
    ) -> crate::StoreFuture<'a, bool> {
        let inner = &self.inner;
        let call = Call::new(Operation::CompareAndSwap, Some(key))
            .writing(new.len())
            .not_idempotent();
        self.layer.around(call, move || {
            inner.compare_and_swap(key, expected, new, ttl)
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> crate::StoreFuture<'a, i64> {
        let inner = &self.inner;
        let call = Call::new(Operation::Increment, Some(key)).not_idempotent();
        self.layer.around(call, move || inner.increment(key, delta))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: std::time::Duration) -> crate::StoreFuture<'a, ()> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Expire, Some(key)), move || {
                inner.expire(key, ttl)
            })
    }

    fn get_and_touch<'a>(
        &'a self,
        key: &'a str,
        ttl: std::time::Duration,
    ) -> crate::StoreFuture<'a, crate::Bytes> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::GetAndTouch, Some(key)), move || {
                inner.get_and_touch(key, ttl)
            })
    }

    fn persist<'a>(&'a self, key: &'a str) -> crate::StoreFuture<'a, ()> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Persist, Some(key)), move || {
                inner.persist(key)
            })
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> crate::StoreFuture<'a, (Vec<String>, Option<String>)> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::ListPage, None), move || {
                inner.list_page(prefix, start_after, limit)
            })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> crate::KeyStream<'a> {
        crate::raw::scan_by_pages(self, prefix)
    }

    fn entries_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> crate::StoreFuture<'a, (Vec<crate::Entry>, Option<String>)> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::EntriesPage, None), move || {
                inner.entries_page(prefix, start_after, limit)
            })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> crate::StoreFuture<'a, usize> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::DeletePrefix, None), move || {
                inner.delete_prefix(prefix)
            })
    }

    fn clear(&self) -> crate::StoreFuture<'_, usize> {
        let inner = &self.inner;
        self.layer
            .around(Call::new(Operation::Clear, None), move || inner.clear())
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: crate::DocumentStore, L: Around> crate::DocumentStore for AroundStore<S, L> {
    forward_documents!(|this| this.inner);
}
