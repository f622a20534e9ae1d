//! The LevelDB backend: [`LevelDbStore`] (feature `leveldb`).
//!
//! # Layout
//!
//! Each namespace is its own LevelDB database, in the directory
//! `leveldb.path/<namespace_dir_name(namespace)>` (see
//! [`namespace_dir_name`]: no two namespaces share a directory and none can
//! name a path outside `leveldb.path`). Inside a database:
//!
//! ```text
//! "d" key                  -> expires_at (u64, big-endian ms; u64::MAX = never) ++ value
//! "x" expires_at key       -> ""   one per key with a TTL: the expiry index
//! ```
//!
//! The expiry index is ordered by deadline, so the sweep reads exactly the
//! expired entries. Every read checks the deadline in the record itself, so
//! an expired key is invisible at once whether or not the sweep has run.
//!
//! # One thread per database
//!
//! `rusty-leveldb`'s handle is neither `Send` nor `Sync`, so each open
//! database lives on a thread of its own (`thread.rs`), which runs every
//! operation in arrival order; each operation is one method there
//! (`ops.rs`), and each request carries its own typed reply channel. The thread takes every request that is waiting and
//! commits the writes among them in one `WriteBatch` (group commit). Reads,
//! writes and the sweep are therefore serialised: the sweep deletes a key
//! only if the record it reads *in the same step* is expired, so it can
//! never delete a newer value (the race the seed implementation had, which
//! deleted on read from a background task).
//!
//! # Durability
//!
//! Every write batch is flushed to the operating system before it is
//! acknowledged, so an acknowledged write survives the process being
//! killed. With `sync_writes: true` the log file is also `fdatasync`ed
//! before the acknowledgement, so it survives a power loss. (`rusty-leveldb`
//! 4.0.2's own `sync` flag only flushes a user-space buffer; this backend
//! plugs in an [`Env`] whose files sync on flush.)

mod batch;
mod env;
pub use env::env;
mod damage;
mod ops;
mod records;
mod thread;

use crate::config::LevelDbConfig;
use crate::deadline::{check_batch_ttl, check_ttl, deadline_ms, remaining};
use crate::document::{DocSpace, Documents};
use crate::expiry::{Clock, SystemClock};
use crate::future::check;
use crate::key::{namespace_dir_name, normalize_namespace, validate_key, validate_prefix};
use crate::registry::absolute;
use crate::DocumentStore;
use crate::{Error, Result, Store, StoreFuture};
use bytes::Bytes;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thread::{Handle, PlainWrite, Request, Worker, OPEN};
use tokio::sync::oneshot;

const BACKEND: &str = "leveldb";

/// A store in a LevelDB database (one directory per namespace).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::{LevelDbConfig, LevelDbStore, Store};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut config = LevelDbConfig::default();
/// config.path = dir.path().to_path_buf();
/// let store = LevelDbStore::open("sessions", config).await?;
/// store.set("s:1", b"ada", None).await?;
/// assert_eq!(store.list("s:").await?, vec!["s:1"]);
/// store.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct LevelDbStore {
    clock: Arc<dyn Clock>,
    /// `None` once closed (see `SqliteStore::database` for the protocol).
    handle: Mutex<Option<Arc<Handle>>>,
}

impl LevelDbStore {
    /// Opens (creating if needed) the database of `namespace` under `config.path`.
    pub async fn open(namespace: &str, config: LevelDbConfig) -> Result<LevelDbStore> {
        LevelDbStore::open_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`LevelDbStore::open`], reading time from `clock`.
    pub async fn open_with_clock(
        namespace: &str,
        config: LevelDbConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<LevelDbStore> {
        let namespace = normalize_namespace(namespace)?;
        let base = base_dir(&config)?;
        let dir = base.join(namespace_dir_name(&namespace));
        let sweep_clock = Arc::clone(&clock);
        let handle = match tokio::task::spawn_blocking(move || {
            if !config.create_if_missing && !dir.exists() {
                return Err(Error::NoStore { path: dir });
            }
            std::fs::create_dir_all(&base).map_err(|e| {
                Error::backend(
                    BACKEND,
                    format!("creating the directory {}", base.display()),
                    e,
                )
            })?;
            OPEN.get_or_open(&dir, |dir| {
                Handle::open(dir, &config, sweep_clock).map(Arc::new)
            })
        })
        .await
        {
            Ok(result) => result?,
            Err(e) => return Err(Error::backend(BACKEND, "opening a database", e)),
        };
        Ok(LevelDbStore {
            clock,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Opens `namespace` with its document layer. Documents live in a
    /// database of their own, like the namespace's but under
    /// `<path>/documents`, so that they never share a key space with plain
    /// keys.
    pub async fn open_documents(
        namespace: &str,
        config: LevelDbConfig,
    ) -> Result<Arc<dyn DocumentStore>> {
        LevelDbStore::open_documents_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`LevelDbStore::open_documents`], reading time from `clock`.
    pub async fn open_documents_with_clock(
        namespace: &str,
        config: LevelDbConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn DocumentStore>> {
        let mut docs_config = config.clone();
        docs_config.path = base_dir(&config)?.join("documents");
        let keys = LevelDbStore::open_with_clock(namespace, config, Arc::clone(&clock)).await?;
        let docs =
            LevelDbStore::open_with_clock(namespace, docs_config, Arc::clone(&clock)).await?;
        Ok(Arc::new(Documents::new(keys, docs, clock)))
    }

    /// The database directory of this store's namespace.
    pub fn dir(&self) -> Option<PathBuf> {
        self.handle.lock().as_ref().map(|h| h.dir.clone())
    }

    /// Runs `op` on the database thread, alone, after every write queued
    /// before it is committed, and answers with its result.
    fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Worker, u64) -> Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.run(Request::Exclusive, op)
    }

    /// Runs the pure read `op` on the database thread (see
    /// [`Request::Read`]) and answers with its result.
    fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Worker, u64) -> Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.run(Request::Read, op)
    }

    fn run<T: Send + 'static>(
        &self,
        kind: fn(thread::Exclusive) -> Request,
        op: impl FnOnce(&mut Worker, u64) -> Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let now_ms = self.clock.now_ms();
        self.send(move |reply| {
            kind(Box::new(move |worker: &mut Worker| {
                let _ = reply.send(worker.contained(|worker| op(worker, now_ms)));
            }))
        })
    }

    /// Queues a plain write, committed with the plain writes around it.
    fn write(&self, write: PlainWrite) -> StoreFuture<'_, ()> {
        self.send(|done| Request::Write { write, done })
    }

    /// Sends the request `make` builds around a reply channel, and waits
    /// for the answer.
    fn send<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> StoreFuture<'_, T> {
        let Some(handle) = self.handle.lock().clone() else {
            return StoreFuture::ready(Err(Error::Closed));
        };
        let (reply, answer) = oneshot::channel();
        let sent = handle.send(make(reply));
        StoreFuture::boxed(async move {
            // The thread answers every request it takes; no answer means
            // it has stopped.
            let answer = if sent { answer.await.ok() } else { None };
            answer.unwrap_or_else(|| {
                Err(Error::backend(
                    BACKEND,
                    format!("using {}", handle.dir.display()),
                    "the database thread has stopped (see the log for why)",
                ))
            })
        })
    }
}

impl Store for LevelDbStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        check!(validate_key(key));
        let key = key.to_owned();
        let found = self.read(move |db, now| db.get(&key, now));
        StoreFuture::boxed(async move { found.await?.ok_or(Error::NotFound) })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key));
        self.write(PlainWrite::Set {
            key: key.to_owned(),
            value: value.to_vec(),
            expires_at: deadline_ms(self.clock.now_ms(), ttl),
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        self.write(PlainWrite::Delete(key.to_owned()))
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        check!(validate_key(key));
        let key = key.to_owned();
        self.read(move |db, now| db.exists(&key, now))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        check!(validate_prefix(prefix));
        let prefix = prefix.to_owned();
        self.read(move |db, now| db.list(&prefix, now))
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        let prefix = prefix.to_owned();
        self.read(move |db, now| db.count(&prefix, now))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        check!(validate_key(key));
        let key = key.to_owned();
        let now = self.clock.now_ms();
        let found = self.read(move |db, now| db.deadline(&key, now));
        StoreFuture::boxed(async move {
            let deadline = found.await?.ok_or(Error::NotFound)?;
            Ok(remaining(deadline, now))
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.read(move |db, now| db.get_many(&keys, now))
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_batch_ttl(entries, ttl));
        check!(entries.iter().try_for_each(|(k, _)| validate_key(k)));
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        let expires_at = deadline_ms(self.clock.now_ms(), ttl);
        self.call(move |db, _| db.set_many(entries, expires_at))
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        // A duplicate is deleted (and counted) once.
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<String> = keys
            .iter()
            .filter(|k| seen.insert(**k))
            .map(|k| (*k).to_owned())
            .collect();
        self.call(move |db, now| db.delete_many(keys, now))
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        self.compare_and_swap(key, None, value, ttl)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key));
        let key = key.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let new = new.to_vec();
        let expires_at = deadline_ms(self.clock.now_ms(), ttl);
        self.call(move |db, now| {
            db.compare_and_swap(key, expected.as_deref(), &new, expires_at, now)
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        let key = key.to_owned();
        self.call(move |db, now| db.increment(key, delta, now))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        let key = key.to_owned();
        let expires_at = deadline_ms(self.clock.now_ms(), Some(ttl));
        self.call(move |db, now| db.get_and_touch(key, expires_at, now).map(drop))
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        let key = key.to_owned();
        let expires_at = deadline_ms(self.clock.now_ms(), Some(ttl));
        self.call(move |db, now| db.get_and_touch(key, expires_at, now))
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        check!(validate_prefix(prefix));
        let prefix = prefix.to_owned();
        let after = start_after.map(str::to_owned);
        let page = self.read(move |db, now| db.list_page(&prefix, after.as_deref(), limit, now));
        StoreFuture::boxed(async move {
            let keys = page.await?;
            let next = (limit > 0 && keys.len() == limit).then(|| keys[limit - 1].clone());
            Ok((keys, next))
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        let prefix = prefix.to_owned();
        self.call(move |db, now| db.delete_prefix(&prefix, now))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        let handle = self.handle.lock().take();
        StoreFuture::boxed(async move {
            // The last store of a database stops its thread, which closes
            // the files and releases the lock; joining it blocks.
            if let Some(handle) = handle {
                tokio::task::spawn_blocking(move || drop(handle))
                    .await
                    .map_err(|e| Error::backend(BACKEND, "closing a database", e))?;
            }
            Ok(())
        })
    }
}

impl DocSpace for LevelDbStore {
    fn scan_values<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Bytes)>> {
        let prefix = prefix.to_owned();
        self.read(move |db, now| db.pairs(&prefix, now))
    }
}

impl std::fmt::Debug for LevelDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelDbStore")
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

/// The directory that holds the namespaces' databases.
fn base_dir(config: &LevelDbConfig) -> Result<PathBuf> {
    let base = if config.path.as_os_str().is_empty() {
        // Never the working directory by surprise: the platform's data dir.
        match dirs::data_dir() {
            Some(data) => data.join("kvs").join("leveldb"),
            None => return Err(Error::config(
                "leveldb.path is empty and this platform has no data directory; set leveldb.path",
            )),
        }
    } else {
        config.path.clone()
    };
    let base = absolute(&base, "leveldb path")?;
    // Namespaces become directories right under it: never scatter them over
    // the root of the file system.
    if base.parent().is_none() {
        return Err(Error::config(format!(
            "leveldb path {} is the root directory; give the store a directory of its own",
            base.display()
        )));
    }
    // rusty-leveldb handles paths as UTF-8 strings (and panics otherwise).
    if base.to_str().is_none() {
        return Err(Error::config(format!(
            "leveldb path {} is not valid UTF-8",
            base.display()
        )));
    }
    if base.is_file() {
        return Err(Error::config(format!(
            "leveldb path {} is a file; it must be a directory",
            base.display()
        )));
    }
    Ok(base)
}

#[cfg(test)]
mod tests;
