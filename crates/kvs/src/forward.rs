//! Forwarding: one macro writes every wrapper's [`Store`] and
//! [`DocumentStore`] methods, so no wrapper can miss one.
//!
//! `forward_store!(|this| EXPR)` inside an `impl Store for W` writes every
//! method of the trait, provided ones included, as a call on `EXPR` (an
//! expression of `this`, which is `self`). `forward_store!(|this| EXPR;
//! get, set, …)` writes only the named ones, for a wrapper that does
//! something of its own in the rest; such an impl carries
//! `#[deny(clippy::missing_trait_methods)]`, so a method added to the trait
//! and not named is a lint error (CI denies warnings) rather than a silent
//! default. The list of every method lives here once, in the first arm.

use crate::{DocumentStore, Store};
use std::sync::Arc;

macro_rules! forward_store {
    (|$this:ident| $inner:expr) => {
        $crate::forward::forward_store!(|$this| $inner;
            get, set, delete, exists, list, count, close, ttl,
            get_many, set_many, delete_many,
            set_if_absent, compare_and_swap, increment,
            expire, get_and_touch, persist, list_page, scan, entries_page, delete_prefix, clear);
    };
    (|$this:ident| $inner:expr; $($method:ident),+ $(,)?) => {
        $( $crate::forward::forward_store!(@$method |$this| $inner); )+
    };
    (@get |$this:ident| $inner:expr) => {
        fn get<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, $crate::Bytes> {
            let $this = self;
            ($inner).get(key)
        }
    };
    (@set |$this:ident| $inner:expr) => {
        fn set<'a>(
            &'a self,
            key: &'a str,
            value: &'a [u8],
            ttl: Option<std::time::Duration>,
        ) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).set(key, value, ttl)
        }
    };
    (@delete |$this:ident| $inner:expr) => {
        fn delete<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).delete(key)
        }
    };
    (@exists |$this:ident| $inner:expr) => {
        fn exists<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, bool> {
            let $this = self;
            ($inner).exists(key)
        }
    };
    (@list |$this:ident| $inner:expr) => {
        fn list<'a>(&'a self, prefix: &'a str) -> $crate::StoreFuture<'a, Vec<String>> {
            let $this = self;
            ($inner).list(prefix)
        }
    };
    (@count |$this:ident| $inner:expr) => {
        fn count<'a>(&'a self, prefix: &'a str) -> $crate::StoreFuture<'a, usize> {
            let $this = self;
            ($inner).count(prefix)
        }
    };
    (@close |$this:ident| $inner:expr) => {
        fn close(&self) -> $crate::StoreFuture<'_, ()> {
            let $this = self;
            ($inner).close()
        }
    };
    (@ttl |$this:ident| $inner:expr) => {
        fn ttl<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, Option<std::time::Duration>> {
            let $this = self;
            ($inner).ttl(key)
        }
    };
    (@get_many |$this:ident| $inner:expr) => {
        fn get_many<'a>(
            &'a self,
            keys: &'a [&'a str],
        ) -> $crate::StoreFuture<'a, Vec<Option<$crate::Bytes>>> {
            let $this = self;
            ($inner).get_many(keys)
        }
    };
    (@set_many |$this:ident| $inner:expr) => {
        fn set_many<'a>(
            &'a self,
            entries: &'a [(&'a str, &'a [u8])],
            ttl: Option<std::time::Duration>,
        ) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).set_many(entries, ttl)
        }
    };
    (@delete_many |$this:ident| $inner:expr) => {
        fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> $crate::StoreFuture<'a, usize> {
            let $this = self;
            ($inner).delete_many(keys)
        }
    };
    (@set_if_absent |$this:ident| $inner:expr) => {
        fn set_if_absent<'a>(
            &'a self,
            key: &'a str,
            value: &'a [u8],
            ttl: Option<std::time::Duration>,
        ) -> $crate::StoreFuture<'a, bool> {
            let $this = self;
            ($inner).set_if_absent(key, value, ttl)
        }
    };
    (@compare_and_swap |$this:ident| $inner:expr) => {
        fn compare_and_swap<'a>(
            &'a self,
            key: &'a str,
            expected: Option<&'a [u8]>,
            new: &'a [u8],
            ttl: Option<std::time::Duration>,
        ) -> $crate::StoreFuture<'a, bool> {
            let $this = self;
            ($inner).compare_and_swap(key, expected, new, ttl)
        }
    };
    (@increment |$this:ident| $inner:expr) => {
        fn increment<'a>(&'a self, key: &'a str, delta: i64) -> $crate::StoreFuture<'a, i64> {
            let $this = self;
            ($inner).increment(key, delta)
        }
    };
    (@expire |$this:ident| $inner:expr) => {
        fn expire<'a>(
            &'a self,
            key: &'a str,
            ttl: std::time::Duration,
        ) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).expire(key, ttl)
        }
    };
    (@get_and_touch |$this:ident| $inner:expr) => {
        fn get_and_touch<'a>(
            &'a self,
            key: &'a str,
            ttl: std::time::Duration,
        ) -> $crate::StoreFuture<'a, $crate::Bytes> {
            let $this = self;
            ($inner).get_and_touch(key, ttl)
        }
    };
    (@persist |$this:ident| $inner:expr) => {
        fn persist<'a>(&'a self, key: &'a str) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).persist(key)
        }
    };
    (@list_page |$this:ident| $inner:expr) => {
        fn list_page<'a>(
            &'a self,
            prefix: &'a str,
            start_after: Option<&'a str>,
            limit: usize,
        ) -> $crate::StoreFuture<'a, (Vec<String>, Option<String>)> {
            let $this = self;
            ($inner).list_page(prefix, start_after, limit)
        }
    };
    (@scan |$this:ident| $inner:expr) => {
        fn scan<'a>(&'a self, prefix: &'a str) -> $crate::KeyStream<'a> {
            let $this = self;
            ($inner).scan(prefix)
        }
    };
    (@entries_page |$this:ident| $inner:expr) => {
        fn entries_page<'a>(
            &'a self,
            prefix: &'a str,
            start_after: Option<&'a str>,
            limit: usize,
        ) -> $crate::StoreFuture<'a, (Vec<$crate::Entry>, Option<String>)> {
            let $this = self;
            ($inner).entries_page(prefix, start_after, limit)
        }
    };
    (@delete_prefix |$this:ident| $inner:expr) => {
        fn delete_prefix<'a>(&'a self, prefix: &'a str) -> $crate::StoreFuture<'a, usize> {
            let $this = self;
            ($inner).delete_prefix(prefix)
        }
    };
    (@clear |$this:ident| $inner:expr) => {
        fn clear(&self) -> $crate::StoreFuture<'_, usize> {
            let $this = self;
            ($inner).clear()
        }
    };
}
pub(crate) use forward_store;

/// Every [`DocumentStore`] method, as a call on `EXPR`; or, with a list,
/// only the named ones (see [`forward_store`]).
macro_rules! forward_documents {
    (|$this:ident| $inner:expr) => {
        $crate::forward::forward_documents!(|$this| $inner;
            put, get_doc, query, delete_doc, collections, restore);
    };
    (|$this:ident| $inner:expr; $($method:ident),+ $(,)?) => {
        $( $crate::forward::forward_documents!(@$method |$this| $inner); )+
    };
    (@put |$this:ident| $inner:expr) => {
        fn put<'a>(
            &'a self,
            collection: &'a str,
            doc: $crate::Document,
        ) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).put(collection, doc)
        }
    };
    (@get_doc |$this:ident| $inner:expr) => {
        fn get_doc<'a>(
            &'a self,
            collection: &'a str,
            id: &'a str,
        ) -> $crate::StoreFuture<'a, $crate::Document> {
            let $this = self;
            ($inner).get_doc(collection, id)
        }
    };
    (@query |$this:ident| $inner:expr) => {
        fn query<'a>(
            &'a self,
            collection: &'a str,
            filter: &'a serde_json::Map<String, serde_json::Value>,
        ) -> $crate::StoreFuture<'a, Vec<$crate::Document>> {
            let $this = self;
            ($inner).query(collection, filter)
        }
    };
    (@delete_doc |$this:ident| $inner:expr) => {
        fn delete_doc<'a>(
            &'a self,
            collection: &'a str,
            id: &'a str,
        ) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).delete_doc(collection, id)
        }
    };
    (@collections |$this:ident| $inner:expr) => {
        fn collections(&self) -> $crate::StoreFuture<'_, Vec<String>> {
            let $this = self;
            ($inner).collections()
        }
    };
    (@restore |$this:ident| $inner:expr) => {
        fn restore<'a>(
            &'a self,
            collection: &'a str,
            doc: $crate::Document,
        ) -> $crate::StoreFuture<'a, ()> {
            let $this = self;
            ($inner).restore(collection, doc)
        }
    };
}
pub(crate) use forward_documents;

/// An `Arc<S>` (and so `Arc<dyn Store>`) is a `Store` too.
#[deny(clippy::missing_trait_methods)]
impl<S: Store + ?Sized> Store for Arc<S> {
    forward_store!(|this| &**this);
}

/// A `Box<S>` (and so `Box<dyn Store>`) is a `Store` too.
#[deny(clippy::missing_trait_methods)]
impl<S: Store + ?Sized> Store for Box<S> {
    forward_store!(|this| &**this);
}

/// An `Arc<S>` (and so `Arc<dyn DocumentStore>`) is a `DocumentStore` too.
#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore + ?Sized> DocumentStore for Arc<S> {
    forward_documents!(|this| &**this);
}

/// A `Box<S>` is a `DocumentStore` too.
#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore + ?Sized> DocumentStore for Box<S> {
    forward_documents!(|this| &**this);
}
