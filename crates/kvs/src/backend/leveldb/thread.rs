//! The database thread: `rusty-leveldb`'s handle is neither `Send` nor
//! `Sync`, so each open database lives on a thread of its own, which
//! answers every [`Request`] in arrival order.

use super::batch::Pending;
use super::damage;
use super::env::SyncingEnv;
use super::records::EXPIRY;
use super::BACKEND;
use crate::config::LevelDbConfig;
use crate::expiry::Clock;
use crate::registry::Registry;
use crate::worker::{next_batch, Next};
use crate::{Error, Result};
use parking_lot::Mutex;
use rusty_leveldb::{LdbIterator, Options, Status, DB};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Requests handled per wake of the database thread at most.
const MAX_BATCH: usize = 1024;

/// The databases open in this process.
pub(super) static OPEN: Registry<Handle> = Registry::new();

/// One open database, shared by every store of its namespace.
pub(super) struct Handle {
    pub(super) dir: PathBuf,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the database thread is asked to do. Each request carries the
/// channel its answer goes back on, typed by what it answers.
pub(super) enum Request {
    /// A plain write: staged with the plain writes around it into one
    /// write batch (one log write, one sync), and answered once that batch
    /// is written.
    Write {
        write: PlainWrite,
        done: oneshot::Sender<Result<()>>,
    },
    /// A read-modify-write (or anything that must see every earlier
    /// write): runs alone, after every earlier write is committed. The
    /// closure sends its own answer.
    Exclusive(Exclusive),
    /// A pure read: runs at once, before the plain writes staged earlier in
    /// the same batch are committed. None of those is acknowledged yet, so
    /// no caller can have seen one, and a read that misses them is one that
    /// came first; meanwhile those writes keep sharing one commit.
    Read(Exclusive),
}

/// An exclusive request: called once with the worker; it sends its own
/// answer (running its operation through [`Worker::contained`], which
/// reopens a database out of use first).
pub(super) type Exclusive = Box<dyn FnOnce(&mut Worker) + Send>;

/// A write that reads nothing, so it can share a write batch.
pub(super) enum PlainWrite {
    Set {
        key: String,
        value: Vec<u8>,
        expires_at: u64,
    },
    Delete(String),
}

impl Handle {
    /// Starts the database thread for `dir` and waits until it has opened it.
    pub(super) fn open(
        dir: &Path,
        config: &LevelDbConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Handle> {
        let (requests, queue) = mpsc::channel();
        let (opened, open_result) = mpsc::channel();
        let thread_dir = dir.to_path_buf();
        let sync = config.sync_writes;
        let interval = config.cleanup_interval;
        let thread = std::thread::Builder::new()
            .name("kvs-leveldb".into())
            .spawn(move || {
                let (db, expiring) = match open_db(&thread_dir, sync) {
                    Ok(opened_db) => {
                        let _ = opened.send(Ok(()));
                        opened_db
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                Worker {
                    db: Some(db),
                    dir: thread_dir.into(),
                    sync,
                    failed: None,
                    expiring,
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

    /// Queues `request`; `false` if the thread has stopped.
    pub(super) fn send(&self, request: Request) -> bool {
        self.requests
            .lock()
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok())
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

/// Opens the database in `dir`, and says whether it holds an expiry entry
/// (see [`Worker::expiring`]). A panic inside rusty-leveldb (it panics on
/// some damaged logs and tables) is an error naming the directory.
fn open_db(dir: &Path, sync: bool) -> Result<(DB, bool)> {
    contain(dir, "opening", || open_db_unguarded(dir, sync)).and_then(|opened| opened)
}

fn open_db_unguarded(dir: &Path, sync: bool) -> Result<(DB, bool)> {
    damage::check(dir)?;
    let options = Options {
        create_if_missing: true,
        // Never append to the log found on open: recovery stops at a torn
        // record (a power cut, a partial write, a full disk), so anything
        // written after one would be acknowledged and then lost on the
        // next open. A fresh log per open is what C++ LevelDB does by
        // default; the old log's records are compacted into a table first.
        reuse_logs: false,
        env: std::rc::Rc::new(Box::new(SyncingEnv::new(sync))),
        ..Options::default()
    };
    let mut db = DB::open(dir, options).map_err(|e| leveldb_error(dir, "opening", e))?;
    let expiring = holds_expiry_entries(&mut db).map_err(|e| leveldb_error(dir, "opening", e))?;
    Ok((db, expiring))
}

/// Whether `db` holds an entry of the expiry index.
fn holds_expiry_entries(db: &mut DB) -> std::result::Result<bool, Status> {
    let mut iter = db.new_iter()?;
    iter.seek(&[EXPIRY]);
    Ok(iter
        .current()
        .is_some_and(|(key, _)| key.first() == Some(&EXPIRY)))
}

/// The one mapping of rusty-leveldb's errors. Worth retrying: the
/// directory's lock is held (by another process; in this process stores
/// share one handle). Corruption, I/O and everything else are not.
pub(super) fn leveldb_error(dir: &Path, what: &str, e: Status) -> Error {
    let temporary = e.code == rusty_leveldb::StatusCode::LockError;
    Error::backend(BACKEND, format!("{what} {}", dir.display()), e).temporary_if(temporary)
}

/// Runs `work` (a call into rusty-leveldb), turning a panic into
/// `Error::Backend` naming `dir` and the panic's message: the thread and
/// the process go on.
pub(super) fn contain<T>(dir: &Path, what: &str, work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Error::backend(
            BACKEND,
            format!("{what} {}", dir.display()),
            format!("rusty-leveldb panicked (is the database damaged?): {message}"),
        )
    })
}

/// What went wrong, without the context every error of this thread shares.
fn cause(e: &Error) -> String {
    match e {
        Error::Backend { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// The database thread's state; its operations are in `ops.rs`.
///
/// Invariant: `db` is `Some` and `failed` is `None`, or the database is out
/// of use: after a write failed (or rusty-leveldb panicked) its memory may
/// hold what the disk does not, so nothing is read or written until it has
/// been reopened from its files (a fresh log, the recovered state). Every
/// request first tries that reopen; see [`Worker::usable`].
pub(super) struct Worker {
    db: Option<DB>,
    /// Shared, so that each request can hold it cheaply while it borrows
    /// the worker.
    pub(super) dir: Arc<Path>,
    sync: bool,
    /// Why the database is out of use.
    failed: Option<String>,
    /// Whether the database may hold an expiry entry. While it holds none,
    /// a write need not read the record it replaces to find the entry to
    /// drop, which halves the work of a `set` on a store without TTLs.
    ///
    /// Invariant: `true` whenever an expiry entry is in the database; set
    /// on open, by every written batch that staged one, and cleared only by
    /// a sweep that finds none.
    pub(super) expiring: bool,
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
                let dir = Arc::clone(&self.dir);
                let swept = contain(&dir, "sweeping", || {
                    self.usable()
                        .and_then(|worker| worker.sweep(clock.now_ms()))
                })
                .and_then(|swept| swept);
                if let Err(e) = swept {
                    // The sweep writes too: after a failure, reopen first.
                    self.fail(format!("the expiry sweep failed: {}", cause(&e)));
                }
                next_sweep = Instant::now() + interval;
            }
        }
        self.close();
    }

    /// The database, or the error that keeps it out of use: reopens it
    /// first if a failure took it out of use.
    pub(super) fn usable(&mut self) -> Result<&mut Worker> {
        if let Some(reason) = self.failed.clone() {
            self.close();
            match open_db(&self.dir, self.sync) {
                Ok((db, expiring)) => {
                    tracing::info!(dir = %self.dir.display(), "kvs leveldb database reopened after a failure");
                    self.db = Some(db);
                    self.expiring = expiring;
                    self.failed = None;
                }
                Err(e) => {
                    return Err(Error::backend(
                        BACKEND,
                        format!("using {}", self.dir.display()),
                        format!(
                            "it is out of use since {reason}, and reopening it failed: {}",
                            cause(&e)
                        ),
                    ))
                }
            }
        }
        Ok(self)
    }

    /// The open database. Only called through [`Worker::usable`], which
    /// makes sure there is one.
    pub(super) fn db(&mut self) -> Result<&mut DB> {
        self.parts().map(|(db, _)| db)
    }

    /// The open database and its directory, borrowed together.
    pub(super) fn parts(&mut self) -> Result<(&mut DB, &Path)> {
        match self.db.as_mut() {
            Some(db) => Ok((db, &self.dir)),
            None => Err(Error::backend(
                BACKEND,
                format!("using {}", self.dir.display()),
                "the database is not open",
            )),
        }
    }

    /// Takes the database out of use until it is reopened.
    fn fail(&mut self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "kvs leveldb database out of use until reopened");
        self.failed = Some(reason);
    }

    /// Closes the database, if open.
    fn close(&mut self) {
        if let Some(mut db) = self.db.take() {
            let dir = Arc::clone(&self.dir);
            match contain(&dir, "closing", move || db.close()) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "closing a leveldb database failed");
                }
                Err(e) => tracing::warn!(error = %e, "closing a leveldb database failed"),
            }
        }
    }

    /// Answers `batch` in order. Consecutive plain writes share one write
    /// batch; an exclusive request first commits the writes before it, so
    /// it sees them.
    fn handle(&mut self, batch: Vec<Request>) {
        let mut pending = self.pending();
        let mut waiting = Vec::new();
        for request in batch {
            match request {
                Request::Write { write, done } => match self.stage(&mut pending, write) {
                    Ok(()) => waiting.push(done),
                    Err(e) => {
                        // The writes staged so far go unwritten with it.
                        let _ = done.send(Err(e));
                        pending = self.pending();
                        for done in std::mem::take(&mut waiting) {
                            let _ = done.send(Err(self.refusal()));
                        }
                    }
                },
                Request::Exclusive(run) => {
                    let staged = std::mem::replace(&mut pending, Pending::new(true));
                    self.commit(staged, std::mem::take(&mut waiting));
                    // `run` contains its operation's panics (see
                    // `Worker::contained`); this only guards the rest.
                    let dir = Arc::clone(&self.dir);
                    if let Err(e) = contain(&dir, "using", || run(self)) {
                        self.fail(cause(&e));
                    }
                    pending = self.pending();
                }
                Request::Read(run) => {
                    let dir = Arc::clone(&self.dir);
                    if let Err(e) = contain(&dir, "reading", || run(self)) {
                        self.fail(cause(&e));
                    }
                }
            }
        }
        self.commit(pending, waiting);
    }

    /// Stages a plain write in `pending`.
    fn stage(&mut self, pending: &mut Pending, write: PlainWrite) -> Result<()> {
        self.contained(|worker| {
            let db = worker.db()?;
            match write {
                PlainWrite::Set {
                    key,
                    value,
                    expires_at,
                } => pending.set(db, key, &value, expires_at),
                PlainWrite::Delete(key) => {
                    pending.delete(db, key);
                }
            }
            Ok(())
        })
    }

    /// Runs `work` on the usable database, containing a panic in it: the
    /// panic is the answer, and takes the database out of use until it is
    /// reopened.
    pub(super) fn contained<T>(
        &mut self,
        work: impl FnOnce(&mut Worker) -> Result<T>,
    ) -> Result<T> {
        let dir = Arc::clone(&self.dir);
        let worker = self.usable()?;
        match contain(&dir, "using", || work(&mut *worker)) {
            Ok(answer) => answer,
            Err(panic) => {
                worker.fail(cause(&panic));
                Err(panic)
            }
        }
    }

    /// The error of a write refused because the database went out of use.
    fn refusal(&self) -> Error {
        let reason = self
            .failed
            .as_deref()
            .unwrap_or("an earlier write in its batch failed");
        Error::backend(
            BACKEND,
            format!("writing to {}", self.dir.display()),
            format!("not written: the database is out of use until reopened, since {reason}"),
        )
    }

    /// Writes `pending` and answers the writers waiting on it.
    fn commit(&mut self, pending: Pending, waiting: Vec<oneshot::Sender<Result<()>>>) {
        if waiting.is_empty() {
            return;
        }
        match self.write(pending) {
            Ok(()) => waiting.into_iter().for_each(|done| {
                let _ = done.send(Ok(()));
            }),
            Err(e) => {
                let mut waiting = waiting.into_iter();
                if let Some(first) = waiting.next() {
                    let _ = first.send(Err(e));
                }
                for done in waiting {
                    let _ = done.send(Err(self.refusal()));
                }
            }
        }
    }

    /// An empty batch to stage writes in.
    pub(super) fn pending(&self) -> Pending {
        Pending::new(self.expiring)
    }

    /// Writes `pending` as one batch, if it staged anything. A failure (or
    /// a panic) takes the database out of use until it is reopened.
    pub(super) fn write(&mut self, pending: Pending) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        if self.failed.is_some() {
            return Err(self.refusal());
        }
        let dir = Arc::clone(&self.dir);
        let db = self.db()?;
        // Always `sync = true`: it flushes rusty-leveldb's buffer to the
        // OS (kill -9 safe); `SyncingEnv` adds the fdatasync if asked to.
        let staged_expiry = pending.expiring;
        let written = contain(&dir, "writing to", || db.write(pending.batch, true))
            .and_then(|w| w.map_err(|e| leveldb_error(&dir, "writing to", e)));
        match &written {
            Ok(()) => self.expiring |= staged_expiry,
            Err(e) => self.fail(format!("a write failed: {}", cause(e))),
        }
        written
    }
}
