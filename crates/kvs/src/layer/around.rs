//! The store behind every layer that acts around each call without
//! touching its arguments (observability, retry, timeout): each says what
//! to do around one call, and [`around_store!`] makes every method of
//! [`Store`](crate::Store) go through it.

use crate::{Bytes, Entry, StoreFuture};
use std::time::Duration;

/// What one call is, as a layer around it sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// The method's name (`"get"`, `"set_many"`, ...).
    pub operation: &'static str,
    /// The key, for the single-key methods.
    pub key: Option<&'a str>,
    /// The bytes of value the call sends.
    pub bytes_written: usize,
    /// Whether the call may be sent again after a failure whose outcome
    /// is unknown, with the same effect as sending it once.
    pub idempotent: bool,
}

impl<'a> Call<'a> {
    pub fn new(operation: &'static str, key: Option<&'a str>) -> Call<'a> {
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

/// `impl Store for $store` where `$store: Around` and has a field `inner`:
/// every method goes through [`Around::around`] but `scan` (a stream,
/// built from `list_page` calls that do).
macro_rules! around_store {
    ($store:ident) => {
        #[deny(clippy::missing_trait_methods)]
        impl<S: $crate::Store> $crate::Store for $store<S> {
            fn get<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, $crate::Bytes> {
                let inner = &self.inner;
                self.around(Call::new("get", Some(key)), move || inner.get(key))
            }

            fn set<'a>(
                &'a self,
                key: &'a str,
                value: &'a [u8],
                ttl: Option<std::time::Duration>,
            ) -> $crate::StoreFuture<'a, ()> {
                let inner = &self.inner;
                let call = Call::new("set", Some(key)).writing(value.len());
                self.around(call, move || inner.set(key, value, ttl))
            }

            fn delete<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, ()> {
                let inner = &self.inner;
                self.around(Call::new("delete", Some(key)), move || inner.delete(key))
            }

            fn exists<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, bool> {
                let inner = &self.inner;
                self.around(Call::new("exists", Some(key)), move || inner.exists(key))
            }

            fn list<'a>(&'a self, prefix: &'a str) -> $crate::StoreFuture<'a, Vec<String>> {
                let inner = &self.inner;
                self.around(Call::new("list", None), move || inner.list(prefix))
            }

            fn count<'a>(&'a self, prefix: &'a str) -> $crate::StoreFuture<'a, usize> {
                let inner = &self.inner;
                self.around(Call::new("count", None), move || inner.count(prefix))
            }

            fn close(&self) -> $crate::StoreFuture<'_, ()> {
                let inner = &self.inner;
                self.around(Call::new("close", None), move || inner.close())
            }

            fn ttl<'a>(
                &'a self,
                key: &'a str,
            ) -> $crate::StoreFuture<'a, Option<std::time::Duration>> {
                let inner = &self.inner;
                self.around(Call::new("ttl", Some(key)), move || inner.ttl(key))
            }

            fn get_many<'a>(
                &'a self,
                keys: &'a [&'a str],
            ) -> $crate::StoreFuture<'a, Vec<Option<$crate::Bytes>>> {
                let inner = &self.inner;
                self.around(Call::new("get_many", None), move || inner.get_many(keys))
            }

            fn set_many<'a>(
                &'a self,
                entries: &'a [(&'a str, &'a [u8])],
                ttl: Option<std::time::Duration>,
            ) -> $crate::StoreFuture<'a, ()> {
                let inner = &self.inner;
                let bytes = entries.iter().map(|(_, v)| v.len()).sum();
                let call = Call::new("set_many", None).writing(bytes);
                self.around(call, move || inner.set_many(entries, ttl))
            }

            fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> $crate::StoreFuture<'a, usize> {
                let inner = &self.inner;
                self.around(Call::new("delete_many", None), move || {
                    inner.delete_many(keys)
                })
            }

            fn set_if_absent<'a>(
                &'a self,
                key: &'a str,
                value: &'a [u8],
                ttl: Option<std::time::Duration>,
            ) -> $crate::StoreFuture<'a, bool> {
                let inner = &self.inner;
                let call = Call::new("set_if_absent", Some(key))
                    .writing(value.len())
                    .not_idempotent();
                self.around(call, move || inner.set_if_absent(key, value, ttl))
            }

            fn compare_and_swap<'a>(
                &'a self,
                key: &'a str,
                expected: Option<&'a [u8]>,
                new: &'a [u8],
                ttl: Option<std::time::Duration>,
            ) -> $crate::StoreFuture<'a, bool> {
                let inner = &self.inner;
                let call = Call::new("compare_and_swap", Some(key))
                    .writing(new.len())
                    .not_idempotent();
                self.around(call, move || {
                    inner.compare_and_swap(key, expected, new, ttl)
                })
            }

            fn increment<'a>(&'a self, key: &'a str, delta: i64) -> $crate::StoreFuture<'a, i64> {
                let inner = &self.inner;
                let call = Call::new("increment", Some(key)).not_idempotent();
                self.around(call, move || inner.increment(key, delta))
            }

            fn expire<'a>(
                &'a self,
                key: &'a str,
                ttl: std::time::Duration,
            ) -> $crate::StoreFuture<'a, ()> {
                let inner = &self.inner;
                self.around(Call::new("expire", Some(key)), move || {
                    inner.expire(key, ttl)
                })
            }

            fn persist<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, ()> {
                let inner = &self.inner;
                self.around(Call::new("persist", Some(key)), move || inner.persist(key))
            }

            fn list_page<'a>(
                &'a self,
                prefix: &'a str,
                start_after: Option<&'a str>,
                limit: usize,
            ) -> $crate::StoreFuture<'a, (Vec<String>, Option<String>)> {
                let inner = &self.inner;
                self.around(Call::new("list_page", None), move || {
                    inner.list_page(prefix, start_after, limit)
                })
            }

            fn scan<'a>(&'a self, prefix: &'a str) -> $crate::KeyStream<'a> {
                $crate::raw::scan_by_pages(self, prefix)
            }

            fn entries_page<'a>(
                &'a self,
                prefix: &'a str,
                start_after: Option<&'a str>,
                limit: usize,
            ) -> $crate::StoreFuture<'a, (Vec<$crate::Entry>, Option<String>)> {
                let inner = &self.inner;
                self.around(Call::new("entries_page", None), move || {
                    inner.entries_page(prefix, start_after, limit)
                })
            }

            fn delete_prefix<'a>(&'a self, prefix: &'a str) -> $crate::StoreFuture<'a, usize> {
                let inner = &self.inner;
                self.around(Call::new("delete_prefix", None), move || {
                    inner.delete_prefix(prefix)
                })
            }

            fn clear(&self) -> $crate::StoreFuture<'_, usize> {
                let inner = &self.inner;
                self.around(Call::new("clear", None), move || inner.clear())
            }
        }

        #[deny(clippy::missing_trait_methods)]
        impl<S: $crate::DocumentStore> $crate::DocumentStore for $store<S> {
            $crate::forward::forward_documents!(|this| this.inner);
        }
    };
}
pub(crate) use around_store;
