//! The same store for programs without an async runtime, as
//! `reqwest::blocking` is for `reqwest`: every [`Store`] operation as a
//! plain function call, run on a small runtime of the store's own.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let config = kvs::Config::from_yaml(&format!("type: sqlite\npath: {}/kvs.db", dir.path().display()))?;
//! let store = kvs::blocking::open(&config)?;
//! store.set("greeting", b"hello", None)?;
//! assert_eq!(store.get("greeting")?, &b"hello"[..]);
//! assert_eq!(store.increment("visits", 1)?, 1);
//! store.close()?;
//! # Ok::<(), kvs::Error>(())
//! ```
//!
//! Calls may come from any number of threads at once. Called from a
//! thread inside an async runtime (a task, `block_on`, or
//! `spawn_blocking`: tokio cannot tell them apart for us, and blocking a
//! worker would stall it), every call is an [`Error::Unsupported`] saying
//! so, never a panic: there, use the async store
//! ([`kvs::open`](crate::open), or [`BlockingStore::store`]) and `.await`.

use crate::{Bytes, Config, Entry, Error, Result, Store};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A [`Store`] whose operations block until they are done. Cloning it is
/// cheap: clones share the store and its runtime.
#[derive(Clone)]
pub struct BlockingStore {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
}

/// The runtime, shut down without waiting when the last clone goes, so
/// that dropping a store never blocks nor panics, wherever it happens.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Opens the store `config` describes, layers included, as
/// [`kvs::open`](crate::open) does.
///
/// # Errors
///
/// What [`kvs::open`](crate::open) returns; [`Error::Unsupported`] when
/// called inside an async runtime.
pub fn open(config: &Config) -> Result<BlockingStore> {
    not_in_async("kvs::blocking::open")?;
    // One worker: enough to drive the backends' own background tasks
    // (Redis reconnects, DynamoDB's HTTP pool) between calls.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kvs-blocking")
        .enable_all()
        .build()
        .map_err(|e| Error::backend("blocking", "starting a runtime for the blocking store", e))?;
    let store = runtime.block_on(crate::open(config))?;
    Ok(BlockingStore {
        store,
        runtime: Arc::new(Runtime(Some(runtime))),
    })
}

/// `Err(Unsupported)` when the caller is inside an async runtime.
fn not_in_async(operation: &str) -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::unsupported(format!(
            "{operation} was called inside an async runtime (a task, block_on or \
             spawn_blocking), where blocking would stall it; use the async store there \
             (kvs::open, or BlockingStore::store) and .await it"
        )));
    }
    Ok(())
}

impl BlockingStore {
    fn run<T>(&self, operation: &str, future: impl Future<Output = Result<T>>) -> Result<T> {
        not_in_async(operation)?;
        match &self.runtime.0 {
            Some(runtime) => runtime.block_on(future),
            None => Err(Error::Closed),
        }
    }

    /// The async store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// [`Store::get`].
    pub fn get(&self, key: &str) -> Result<Bytes> {
        self.run("get", self.store.get(key))
    }

    /// [`Store::set`].
    pub fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.run("set", self.store.set(key, value, ttl))
    }

    /// [`Store::delete`].
    pub fn delete(&self, key: &str) -> Result<()> {
        self.run("delete", self.store.delete(key))
    }

    /// [`Store::exists`].
    pub fn exists(&self, key: &str) -> Result<bool> {
        self.run("exists", self.store.exists(key))
    }

    /// [`Store::list`].
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.run("list", self.store.list(prefix))
    }

    /// [`Store::count`].
    pub fn count(&self, prefix: &str) -> Result<usize> {
        self.run("count", self.store.count(prefix))
    }

    /// [`Store::ttl`].
    pub fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.run("ttl", self.store.ttl(key))
    }

    /// [`Store::get_many`].
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.run("get_many", self.store.get_many(keys))
    }

    /// [`Store::set_many`].
    pub fn set_many(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        self.run("set_many", self.store.set_many(entries, ttl))
    }

    /// [`Store::delete_many`].
    pub fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        self.run("delete_many", self.store.delete_many(keys))
    }

    /// [`Store::set_if_absent`].
    pub fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        self.run("set_if_absent", self.store.set_if_absent(key, value, ttl))
    }

    /// [`Store::compare_and_swap`].
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let call = self.store.compare_and_swap(key, expected, new, ttl);
        self.run("compare_and_swap", call)
    }

    /// [`Store::increment`].
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.run("increment", self.store.increment(key, delta))
    }

    /// [`Store::expire`].
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<()> {
        self.run("expire", self.store.expire(key, ttl))
    }

    /// [`Store::get_and_touch`].
    pub fn get_and_touch(&self, key: &str, ttl: Duration) -> Result<Bytes> {
        self.run("get_and_touch", self.store.get_and_touch(key, ttl))
    }

    /// [`Store::persist`].
    pub fn persist(&self, key: &str) -> Result<()> {
        self.run("persist", self.store.persist(key))
    }

    /// [`Store::list_page`].
    pub fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        self.run(
            "list_page",
            self.store.list_page(prefix, start_after, limit),
        )
    }

    /// [`Store::entries_page`].
    pub fn entries_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Entry>, Option<String>)> {
        let call = self.store.entries_page(prefix, start_after, limit);
        self.run("entries_page", call)
    }

    /// [`Store::delete_prefix`].
    pub fn delete_prefix(&self, prefix: &str) -> Result<usize> {
        self.run("delete_prefix", self.store.delete_prefix(prefix))
    }

    /// [`Store::clear`].
    pub fn clear(&self) -> Result<usize> {
        self.run("clear", self.store.clear())
    }

    /// [`Store::close`].
    pub fn close(&self) -> Result<()> {
        self.run("close", self.store.close())
    }
}

impl std::fmt::Debug for BlockingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingStore").finish_non_exhaustive()
    }
}
