//! The database thread: `rusty-leveldb`'s handle is neither `Send` nor
//! `Sync`, so each open database lives on a thread of its own, which
//! answers every [`Request`] in arrival order.

use super::batch::Pending;
use super::env::SyncingEnv;
use super::BACKEND;
use crate::config::LevelDbConfig;
use crate::expiry::Clock;
use crate::registry::Registry;
use crate::worker::{next_batch, Next};
use crate::{Error, Result};
use parking_lot::Mutex;
use rusty_leveldb::{Options, PosixDiskEnv, Status, DB};
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
    /// Anything that reads, read-modify-writes included: runs alone, after
    /// every earlier write is committed. The closure sends its own answer.
    Exclusive(Box<dyn FnOnce(&mut Worker) + Send>),
}

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
pub(super) fn leveldb_error(dir: &Path, what: &str, e: Status) -> Error {
    let temporary = e.code == rusty_leveldb::StatusCode::LockError;
    Error::backend(BACKEND, format!("{what} {}", dir.display()), e).temporary_if(temporary)
}

/// The database thread's state; its operations are in `ops.rs`.
pub(super) struct Worker {
    pub(super) db: DB,
    pub(super) dir: PathBuf,
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

    /// Answers `batch` in order. Consecutive plain writes share one write
    /// batch; an exclusive request first commits the writes before it, so
    /// it sees them.
    fn handle(&mut self, batch: Vec<Request>) {
        let mut pending = Pending::default();
        let mut waiting = Vec::new();
        for request in batch {
            match request {
                Request::Write { write, done } => {
                    match write {
                        PlainWrite::Set {
                            key,
                            value,
                            expires_at,
                        } => pending.set(&mut self.db, key, &value, expires_at),
                        PlainWrite::Delete(key) => {
                            pending.delete(&mut self.db, key);
                        }
                    }
                    waiting.push(done);
                }
                Request::Exclusive(run) => {
                    self.commit(std::mem::take(&mut pending), std::mem::take(&mut waiting));
                    run(self);
                }
            }
        }
        self.commit(pending, waiting);
    }

    /// Writes `pending` and answers the writers waiting on it.
    fn commit(&mut self, pending: Pending, waiting: Vec<oneshot::Sender<Result<()>>>) {
        if waiting.is_empty() {
            return;
        }
        let result = self.write_batch(pending);
        for done in waiting {
            let answer = result
                .clone()
                .map_err(|e| leveldb_error(&self.dir, "writing to", e));
            let _ = done.send(answer);
        }
    }

    /// Writes `pending` as one batch, if it staged anything.
    pub(super) fn write(&mut self, pending: Pending) -> Result<()> {
        self.write_batch(pending)
            .map_err(|e| leveldb_error(&self.dir, "writing to", e))
    }

    fn write_batch(&mut self, pending: Pending) -> rusty_leveldb::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        // Always `sync = true`: it flushes rusty-leveldb's buffer to the
        // OS (kill -9 safe); `SyncingEnv` adds the fdatasync if asked to.
        self.db.write(pending.batch, true)
    }
}
