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
//! database lives on a thread of its own, which runs every operation in
//! arrival order. The thread takes every request that is waiting and
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

use crate::config::LevelDbConfig;
use crate::document::{DocSpace, Documents};
use crate::expiry::{check_ttl, deadline_ms, is_live, remaining, Clock, SystemClock, NEVER};
use crate::future::check;
use crate::generic::next_counter;
use crate::key::{namespace_dir_name, normalize_namespace, validate_key, validate_prefix};
use crate::registry::{absolute, Registry};
use crate::worker::{next_batch, Next};
use crate::DocumentStore;
use crate::{Error, Result, Store, StoreFuture};
use bytes::Bytes;
use parking_lot::Mutex;
use rusty_leveldb::env::{Env, FileLock, Logger, RandomAccess};
use rusty_leveldb::{LdbIterator, Options, PosixDiskEnv, Status, WriteBatch, DB};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const BACKEND: &str = "leveldb";
/// Record keys start with this byte.
const DATA: u8 = b'd';
/// Expiry-index keys start with this byte.
const EXPIRY: u8 = b'x';
/// Bytes of deadline in front of every value.
const HEADER: usize = 8;
/// Requests handled per wake of the database thread at most.
const MAX_BATCH: usize = 1024;
/// Expired keys deleted per write batch by the sweep.
const SWEEP_BATCH: usize = 1000;

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

/// One open database, shared by every store of its namespace.
struct Handle {
    dir: PathBuf,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The databases open in this process.
static OPEN: Registry<Handle> = Registry::new();

enum Op {
    Get(String),
    /// Every live `(key, value)` under a prefix (the document layer's query).
    Scan(String),
    /// The deadline of a live key.
    Deadline(String),
    Exists(String),
    List(String),
    Count(String),
    Set {
        key: String,
        value: Vec<u8>,
        expires_at: u64,
    },
    Delete(String),
    GetMany(Vec<String>),
    SetMany {
        entries: Vec<(String, Vec<u8>)>,
        expires_at: u64,
    },
    DeleteMany(Vec<String>),
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        expires_at: u64,
    },
    Increment {
        key: String,
        delta: i64,
    },
    Expire {
        key: String,
        expires_at: u64,
    },
    ListPage {
        prefix: String,
        after: Option<String>,
        limit: usize,
    },
    DeletePrefix(String),
}

enum Reply {
    Value(Option<Bytes>),
    Pairs(Vec<(String, Bytes)>),
    Deadline(Option<u64>),
    Bool(bool),
    Keys(Vec<String>),
    Count(usize),
    Values(Vec<Option<Bytes>>),
    Flag(bool),
    Number(i64),
    Done,
}

struct Request {
    op: Op,
    now_ms: u64,
    reply: oneshot::Sender<Result<Reply>>,
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

    fn call<T: Send + 'static>(
        &self,
        op: Op,
        unpack: fn(Reply) -> Option<T>,
    ) -> StoreFuture<'_, T> {
        let Some(handle) = self.handle.lock().clone() else {
            return StoreFuture::ready(Err(Error::Closed));
        };
        let (reply, answer) = oneshot::channel();
        let request = Request {
            op,
            now_ms: self.clock.now_ms(),
            reply,
        };
        let sent = handle
            .requests
            .lock()
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok());
        StoreFuture::boxed(async move {
            let stopped = || {
                Error::backend(
                    BACKEND,
                    format!("using {}", handle.dir.display()),
                    "the database thread has stopped (see the log for why)",
                )
            };
            if !sent {
                return Err(stopped());
            }
            match answer.await {
                Ok(result) => result.and_then(|reply| unpack(reply).ok_or_else(stopped)),
                Err(_) => Err(stopped()),
            }
        })
    }
}

impl Store for LevelDbStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        check!(validate_key(key));
        let found = self.call(Op::Get(key.to_owned()), |r| match r {
            Reply::Value(v) => Some(v),
            _ => None,
        });
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
        let expires_at = deadline_ms(self.clock.now_ms(), ttl);
        let op = Op::Set {
            key: key.to_owned(),
            value: value.to_vec(),
            expires_at,
        };
        self.call(op, done)
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        self.call(Op::Delete(key.to_owned()), done)
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        check!(validate_key(key));
        self.call(Op::Exists(key.to_owned()), |r| match r {
            Reply::Bool(b) => Some(b),
            _ => None,
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        check!(validate_prefix(prefix));
        self.call(Op::List(prefix.to_owned()), |r| match r {
            Reply::Keys(keys) => Some(keys),
            _ => None,
        })
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        self.call(Op::Count(prefix.to_owned()), |r| match r {
            Reply::Count(n) => Some(n),
            _ => None,
        })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        check!(validate_key(key));
        let now = self.clock.now_ms();
        let found = self.call(Op::Deadline(key.to_owned()), |r| match r {
            Reply::Deadline(d) => Some(d),
            _ => None,
        });
        StoreFuture::boxed(async move {
            let deadline = found.await?.ok_or(Error::NotFound)?;
            Ok(remaining(deadline, now))
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self.call(Op::GetMany(keys), |r| match r {
            Reply::Values(v) => Some(v),
            _ => None,
        })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(entries
            .first()
            .map_or(Ok(()), |(key, _)| check_ttl(key, ttl)));
        check!(entries.iter().try_for_each(|(k, _)| validate_key(k)));
        let op = Op::SetMany {
            entries: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            expires_at: deadline_ms(self.clock.now_ms(), ttl),
        };
        self.call(op, done)
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(keys.iter().try_for_each(|k| validate_key(k)));
        // A duplicate is deleted (and counted) once.
        let mut seen = std::collections::HashSet::new();
        let keys = keys
            .iter()
            .filter(|k| seen.insert(**k))
            .map(|k| (*k).to_owned())
            .collect();
        self.call(Op::DeleteMany(keys), count)
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
        let op = Op::CompareAndSwap {
            key: key.to_owned(),
            expected: expected.map(<[u8]>::to_vec),
            value: new.to_vec(),
            expires_at: deadline_ms(self.clock.now_ms(), ttl),
        };
        self.call(op, |r| match r {
            Reply::Flag(b) => Some(b),
            _ => None,
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        self.call(
            Op::Increment {
                key: key.to_owned(),
                delta,
            },
            |r| match r {
                Reply::Number(n) => Some(n),
                _ => None,
            },
        )
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        let op = Op::Expire {
            key: key.to_owned(),
            expires_at: deadline_ms(self.clock.now_ms(), Some(ttl)),
        };
        self.call(op, done)
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        check!(validate_prefix(prefix));
        let op = Op::ListPage {
            prefix: prefix.to_owned(),
            after: start_after.map(str::to_owned),
            limit,
        };
        let page = self.call(op, |r| match r {
            Reply::Keys(keys) => Some(keys),
            _ => None,
        });
        StoreFuture::boxed(async move {
            let keys = page.await?;
            let next = (limit > 0 && keys.len() == limit).then(|| keys[limit - 1].clone());
            Ok((keys, next))
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        self.call(Op::DeletePrefix(prefix.to_owned()), count)
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
        self.call(Op::Scan(prefix.to_owned()), |r| match r {
            Reply::Pairs(pairs) => Some(pairs),
            _ => None,
        })
    }
}

fn count(reply: Reply) -> Option<usize> {
    match reply {
        Reply::Count(n) => Some(n),
        _ => None,
    }
}

fn done(reply: Reply) -> Option<()> {
    matches!(reply, Reply::Done).then_some(())
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

impl Handle {
    /// Starts the database thread for `dir` and waits until it has opened it.
    fn open(dir: &Path, config: &LevelDbConfig, clock: Arc<dyn Clock>) -> Result<Handle> {
        let (requests, queue) = mpsc::channel();
        let (opened, open_result) = mpsc::channel();
        let thread_dir = dir.to_path_buf();
        let sync = config.sync_writes;
        let interval = config.cleanup_interval;
        let thread = std::thread::Builder::new()
            .name("kvs-leveldb".into())
            .spawn(move || {
                let db = match open_db(&thread_dir, sync) {
                    Ok(db) => {
                        let _ = opened.send(Ok(()));
                        db
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                Worker {
                    db,
                    dir: thread_dir,
                }
                .run(&queue, interval, clock.as_ref());
            })
            .map_err(|e| Error::backend(BACKEND, "starting the database thread", e))?;
        let opened = open_result.recv().unwrap_or_else(|_| {
            Err(Error::backend(
                BACKEND,
                format!("opening {}", dir.display()),
                "the database thread stopped while opening it (is the database corrupt?)",
            ))
        });
        if let Err(e) = opened {
            let _ = thread.join();
            return Err(e);
        }
        Ok(Handle {
            dir: dir.to_path_buf(),
            requests: Mutex::new(Some(requests)),
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after it has answered
        // every request already queued; the DB is closed with the thread.
        drop(self.requests.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "kvs leveldb thread panicked");
            }
        }
    }
}

fn open_db(dir: &Path, sync: bool) -> Result<DB> {
    let options = Options {
        create_if_missing: true,
        // Never append to the log found on open: recovery stops at a torn
        // record (a power cut, a partial write, a full disk), so anything
        // written after one would be acknowledged and then lost on the
        // next open. A fresh log per open is what C++ LevelDB does by
        // default; the old log's records are compacted into a table first.
        reuse_logs: false,
        env: std::rc::Rc::new(Box::new(SyncingEnv {
            inner: PosixDiskEnv::new(),
            sync,
        })),
        ..Options::default()
    };
    DB::open(dir, options).map_err(|e| leveldb_error(dir, "opening", e))
}

/// The one mapping of rusty-leveldb's errors. Worth retrying: the
/// directory's lock is held (by another process; in this process stores
/// share one handle). Corruption, I/O and everything else are not.
fn leveldb_error(dir: &Path, what: &str, e: Status) -> Error {
    let temporary = e.code == rusty_leveldb::StatusCode::LockError;
    Error::backend(BACKEND, format!("{what} {}", dir.display()), e).temporary_if(temporary)
}

fn data_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(DATA);
    k.extend_from_slice(key.as_bytes());
    k
}

fn expiry_key(expires_at: u64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + HEADER + key.len());
    k.push(EXPIRY);
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// A record's deadline, or `None` for a record too short to have one.
fn record_deadline(record: &[u8]) -> Option<u64> {
    let header: [u8; HEADER] = record.get(..HEADER)?.try_into().ok()?;
    Some(u64::from_be_bytes(header))
}

/// The database thread's state.
struct Worker {
    db: DB,
    dir: PathBuf,
}

impl Worker {
    fn run(mut self, queue: &mpsc::Receiver<Request>, interval: Duration, clock: &dyn Clock) {
        let sweeps = !interval.is_zero();
        let mut next_sweep = Instant::now() + interval;
        loop {
            match next_batch(queue, MAX_BATCH, sweeps.then_some(next_sweep)) {
                Next::Batch(batch) => self.handle(batch),
                Next::Due => {}
                Next::Closed => break,
            }
            if sweeps && Instant::now() >= next_sweep {
                if let Err(e) = self.sweep(clock.now_ms()) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "kvs leveldb expiry sweep failed");
                }
                next_sweep = Instant::now() + interval;
            }
        }
        if let Err(e) = self.db.close() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing a leveldb database failed");
        }
    }

    /// Answers `batch` in order. Consecutive writes share one write batch
    /// (one log write, one sync); a read first commits the writes before it,
    /// so it sees them.
    fn handle(&mut self, batch: Vec<Request>) {
        let mut pending = Pending::default();
        for request in batch {
            match request.op {
                Op::Set {
                    key,
                    value,
                    expires_at,
                } => {
                    pending.set(&mut self.db, key, &value, expires_at);
                    pending.waiting.push(request.reply);
                }
                Op::Delete(key) => {
                    pending.delete(&mut self.db, key);
                    pending.waiting.push(request.reply);
                }
                other => {
                    // Reads and read-modify-writes see every earlier write.
                    pending = self.commit(pending);
                    let result = self.exclusive(other, request.now_ms);
                    let _ = request.reply.send(result);
                }
            }
        }
        self.commit(pending);
    }

    /// Runs an operation that reads, after every earlier write is committed;
    /// its own writes form one write batch.
    fn exclusive(&mut self, op: Op, now_ms: u64) -> Result<Reply> {
        let live = |record: &[u8]| record_deadline(record).is_some_and(|d| is_live(d, now_ms));
        let mut pending = Pending::default();
        let reply = match op {
            Op::GetMany(keys) => Reply::Values(
                keys.iter()
                    .map(|key| {
                        self.db
                            .get(&data_key(key))
                            .filter(|r| live(r))
                            .map(|r| r.slice(HEADER..))
                    })
                    .collect(),
            ),
            Op::SetMany {
                entries,
                expires_at,
            } => {
                for (key, value) in entries {
                    pending.set(&mut self.db, key, &value, expires_at);
                }
                Reply::Done
            }
            Op::DeleteMany(keys) => {
                let mut deleted = 0;
                for key in keys {
                    if pending.delete_live(&mut self.db, key, now_ms) {
                        deleted += 1;
                    }
                }
                Reply::Count(deleted)
            }
            Op::CompareAndSwap {
                key,
                expected,
                value,
                expires_at,
            } => {
                let current = self.db.get(&data_key(&key)).filter(|r| live(r));
                let same = current.as_ref().map(|r| &r[HEADER..]) == expected.as_deref();
                if same {
                    pending.set(&mut self.db, key, &value, expires_at);
                }
                Reply::Flag(same)
            }
            Op::Increment { key, delta } => {
                let current = self.db.get(&data_key(&key)).filter(|r| live(r));
                let next = next_counter(&key, current.as_ref().map(|r| &r[HEADER..]), delta)?;
                let expires_at = current
                    .as_deref()
                    .and_then(record_deadline)
                    .unwrap_or(NEVER);
                pending.set(&mut self.db, key, next.to_string().as_bytes(), expires_at);
                Reply::Number(next)
            }
            Op::Expire { key, expires_at } => {
                let record = self
                    .db
                    .get(&data_key(&key))
                    .filter(|r| live(r))
                    .ok_or(Error::NotFound)?;
                pending.set(&mut self.db, key, &record[HEADER..], expires_at);
                Reply::Done
            }
            Op::ListPage {
                prefix,
                after,
                limit,
            } => {
                let mut keys = Vec::new();
                self.scan(&prefix, after.as_deref(), |key, record| {
                    if keys.len() < limit && live(record) {
                        keys.push(key);
                    }
                    keys.len() < limit
                })?;
                Reply::Keys(keys)
            }
            Op::DeletePrefix(prefix) => {
                let mut doomed = Vec::new();
                self.scan(&prefix, None, |key, _| {
                    doomed.push(key);
                    true
                })?;
                let mut deleted = 0;
                for key in doomed {
                    if pending.delete_live(&mut self.db, key, now_ms) {
                        deleted += 1;
                    }
                }
                Reply::Count(deleted)
            }
            read => self.read(read, now_ms)?,
        };
        if !pending.deadlines.is_empty() {
            self.db
                .write(pending.batch, true)
                .map_err(|e| leveldb_error(&self.dir, "writing to", e))?;
        }
        Ok(reply)
    }

    /// Writes the pending batch and answers its writers; returns an empty one.
    fn commit(&mut self, pending: Pending) -> Pending {
        if pending.waiting.is_empty() {
            return Pending::default();
        }
        // Always `sync = true`: it flushes rusty-leveldb's buffer to the
        // OS (kill -9 safe); `SyncingEnv` adds the fdatasync if asked to.
        let result = self.db.write(pending.batch, true);
        for reply in pending.waiting {
            let answer = match &result {
                Ok(()) => Ok(Reply::Done),
                Err(e) => Err(leveldb_error(&self.dir, "writing to", e.clone())),
            };
            let _ = reply.send(answer);
        }
        Pending::default()
    }

    fn read(&mut self, op: Op, now_ms: u64) -> Result<Reply> {
        let live = |record: &[u8]| record_deadline(record).is_some_and(|d| is_live(d, now_ms));
        match op {
            Op::Get(key) => Ok(Reply::Value(
                self.db
                    .get(&data_key(&key))
                    .filter(|record| live(record))
                    .map(|record| record.slice(HEADER..)),
            )),
            Op::Deadline(key) => Ok(Reply::Deadline(
                self.db
                    .get(&data_key(&key))
                    .and_then(|record| record_deadline(&record))
                    .filter(|d| is_live(*d, now_ms)),
            )),
            Op::Exists(key) => Ok(Reply::Bool(
                self.db
                    .get(&data_key(&key))
                    .is_some_and(|record| live(&record)),
            )),
            Op::List(prefix) => {
                let mut keys = Vec::new();
                self.scan(&prefix, None, |key, record| {
                    if live(record) {
                        keys.push(key);
                    }
                    true
                })?;
                Ok(Reply::Keys(keys))
            }
            Op::Scan(prefix) => {
                let mut pairs = Vec::new();
                self.scan(&prefix, None, |key, record| {
                    if live(record) {
                        pairs.push((key, Bytes::copy_from_slice(&record[HEADER..])));
                    }
                    true
                })?;
                Ok(Reply::Pairs(pairs))
            }
            Op::Count(prefix) => {
                let mut count = 0;
                self.scan(&prefix, None, |_, record| {
                    if live(record) {
                        count += 1;
                    }
                    true
                })?;
                Ok(Reply::Count(count))
            }
            _ => Ok(Reply::Done),
        }
    }

    /// Calls `each` with every record whose key starts with `prefix` (and
    /// sorts after `after`), in key order, while it returns `true`.
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        mut each: impl FnMut(String, &[u8]) -> bool,
    ) -> Result<()> {
        let start = data_key(prefix);
        let mut iter = self
            .db
            .new_iter()
            .map_err(|e| leveldb_error(&self.dir, "reading", e))?;
        match after {
            Some(after) if after >= prefix => {
                iter.seek(&data_key(after));
                // `seek` lands on `after` itself when it exists; skip it.
                if iter
                    .current()
                    .is_some_and(|(k, _)| k[1..] == *after.as_bytes())
                {
                    iter.advance();
                }
            }
            _ => iter.seek(&start),
        }
        while let Some((key, record)) = iter.current() {
            if !key.starts_with(&start) {
                break;
            }
            // Keys were written from `&str`, so this only fails on a database
            // written by someone else; skip such a key rather than fail.
            if let Ok(key) = std::str::from_utf8(&key[1..]) {
                if !each(key.to_owned(), &record) {
                    break;
                }
            }
            if !iter.advance() {
                break;
            }
        }
        Ok(())
    }

    /// Deletes every key whose deadline has passed; returns how many.
    fn sweep(&mut self, now_ms: u64) -> Result<usize> {
        let mut removed = 0;
        loop {
            let mut expired = Vec::new();
            {
                let mut iter = self
                    .db
                    .new_iter()
                    .map_err(|e| leveldb_error(&self.dir, "sweeping", e))?;
                iter.seek(&[EXPIRY]);
                while let Some((index_key, _)) = iter.current() {
                    if index_key.first() != Some(&EXPIRY) || expired.len() >= SWEEP_BATCH {
                        break;
                    }
                    let Some(deadline) = record_deadline(&index_key[1..]) else {
                        break;
                    };
                    if is_live(deadline, now_ms) {
                        break;
                    }
                    expired.push((
                        index_key.to_vec(),
                        deadline,
                        index_key[1 + HEADER..].to_vec(),
                    ));
                    if !iter.advance() {
                        break;
                    }
                }
            }
            if expired.is_empty() {
                return Ok(removed);
            }
            let mut batch = WriteBatch::default();
            for (index_key, deadline, key) in &expired {
                batch.delete(index_key);
                let mut data = vec![DATA];
                data.extend_from_slice(key);
                // Delete the record only if it is the expired one: a newer
                // write replaced the index entry and must survive.
                if self.db.get(&data).and_then(|r| record_deadline(&r)) == Some(*deadline) {
                    batch.delete(&data);
                    removed += 1;
                }
            }
            self.db
                .write(batch, true)
                .map_err(|e| leveldb_error(&self.dir, "sweeping", e))?;
        }
    }
}

/// Writes gathered for one write batch.
#[derive(Default)]
struct Pending {
    batch: WriteBatch,
    /// Deadlines (or `None`: deleted) of keys written in this batch, which
    /// the database does not show yet.
    deadlines: HashMap<String, Option<u64>>,
    waiting: Vec<oneshot::Sender<Result<Reply>>>,
}

impl Pending {
    /// Stages `key = value` with `expires_at`, keeping the expiry index in step.
    fn set(&mut self, db: &mut DB, key: String, value: &[u8], expires_at: u64) {
        if let Some(old) = self.deadline(db, &key).filter(|d| *d != NEVER) {
            self.batch.delete(&expiry_key(old, &key));
        }
        if expires_at != NEVER {
            self.batch.put(&expiry_key(expires_at, &key), b"");
        }
        let mut record = Vec::with_capacity(HEADER + value.len());
        record.extend_from_slice(&expires_at.to_be_bytes());
        record.extend_from_slice(value);
        self.batch.put(&data_key(&key), &record);
        self.deadlines.insert(key, Some(expires_at));
    }

    /// Stages the removal of `key` and its expiry entry; returns the
    /// deadline it had, if it existed.
    fn delete(&mut self, db: &mut DB, key: String) -> Option<u64> {
        let old = self.deadline(db, &key);
        if let Some(old) = old {
            if old != NEVER {
                self.batch.delete(&expiry_key(old, &key));
            }
            self.batch.delete(&data_key(&key));
        }
        self.deadlines.insert(key, None);
        old
    }

    /// Like [`Pending::delete`]; returns whether the key was live at `now_ms`.
    fn delete_live(&mut self, db: &mut DB, key: String, now_ms: u64) -> bool {
        self.delete(db, key).is_some_and(|d| is_live(d, now_ms))
    }

    /// The current deadline of `key`: from this batch, else from the database.
    fn deadline(&self, db: &mut DB, key: &str) -> Option<u64> {
        match self.deadlines.get(key) {
            Some(deadline) => *deadline,
            None => db.get(&data_key(key)).and_then(|r| record_deadline(&r)),
        }
    }
}

/// `PosixDiskEnv` whose written files `fdatasync` when flushed, if `sync`.
///
/// rusty-leveldb flushes its log after a write with `sync = true`; with the
/// plain `PosixDiskEnv` that only empties a user-space buffer.
struct SyncingEnv {
    inner: PosixDiskEnv,
    sync: bool,
}

/// A file that syncs its data to disk on `flush`.
struct SyncOnFlush {
    file: BufWriter<File>,
    sync: bool,
}

impl Write for SyncOnFlush {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.sync {
            self.file.get_ref().sync_data()?;
        }
        Ok(())
    }
}

fn io_status(what: &str, path: &Path, e: std::io::Error) -> Status {
    let mut status = Status::from(e);
    status.err = format!("{what} {}: {}", path.display(), status.err);
    status
}

impl Env for SyncingEnv {
    fn open_sequential_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Read>> {
        self.inner.open_sequential_file(p)
    }
    fn open_random_access_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn RandomAccess>> {
        self.inner.open_random_access_file(p)
    }
    fn open_writable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(p)
            .map_err(|e| io_status("open (write)", p, e))?;
        Ok(Box::new(SyncOnFlush {
            file: BufWriter::new(file),
            sync: self.sync,
        }))
    }
    fn open_appendable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| io_status("open (append)", p, e))?;
        Ok(Box::new(SyncOnFlush {
            file: BufWriter::new(file),
            sync: self.sync,
        }))
    }
    fn exists(&self, p: &Path) -> rusty_leveldb::Result<bool> {
        self.inner.exists(p)
    }
    fn children(&self, p: &Path) -> rusty_leveldb::Result<Vec<PathBuf>> {
        self.inner.children(p)
    }
    fn size_of(&self, p: &Path) -> rusty_leveldb::Result<usize> {
        self.inner.size_of(p)
    }
    fn delete(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.delete(p)
    }
    fn mkdir(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.mkdir(p)
    }
    fn rmdir(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.rmdir(p)
    }
    fn rename(&self, old: &Path, new: &Path) -> rusty_leveldb::Result<()> {
        self.inner.rename(old, new)
    }
    fn lock(&self, p: &Path) -> rusty_leveldb::Result<FileLock> {
        self.inner.lock(p)
    }
    fn unlock(&self, l: FileLock) -> rusty_leveldb::Result<()> {
        self.inner.unlock(l)
    }
    fn new_logger(&self, p: &Path) -> rusty_leveldb::Result<Logger> {
        self.inner.new_logger(p)
    }
    fn micros(&self) -> u64 {
        self.inner.micros()
    }
    fn sleep_for(&self, micros: u32) {
        self.inner.sleep_for(micros);
    }
}
