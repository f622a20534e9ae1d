//! One open database file, shared by every store of this process opened
//! on it: its write connection, its write queue, its read connections and
//! its sweep thread; and the one mapping of SQLite's errors.

use super::read_pool::ReadPool;
use super::schema::create_schema;
use super::sweeper::sweep_loop;
use super::writer::Command;
use super::BACKEND;
use crate::config::SqliteConfig;
use crate::expiry::Clock;
use crate::registry::{absolute, Registry};
use crate::{Error, Result};
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connection waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database files open in this process.
static OPEN: Registry<Database> = Registry::new();

/// One open database file, shared by every store opened on it.
pub(super) struct Database {
    pub(super) path: PathBuf,
    /// The only write connection. Its holder commits `queued` (see `writer.rs`).
    pub(super) writer: Mutex<Connection>,
    /// Writes waiting for the holder of `writer`, in the order they came.
    pub(super) queued: Mutex<Vec<Command>>,
    /// Dropping it stops the sweep thread.
    pub(super) stop_sweeps: Mutex<Option<mpsc::Sender<()>>>,
    pub(super) sweeper: Mutex<Option<JoinHandle<()>>>,
    /// The read connections. At most `READ_SLOTS` are ever open: a read
    /// that finds none idle waits, on its blocking-pool thread, for the
    /// next one given back (`reader_free`) rather than opening one more
    /// (parsing the schema) to drop after. Waiting there, not on an async
    /// semaphore before `spawn_blocking`, hands a freed connection straight
    /// to a thread that is ready to use it: under 64 tasks the async
    /// hand-over (wake the task, then spawn) left connections idle and
    /// halved read throughput.
    pub(super) readers: Mutex<ReadPool>,
    pub(super) reader_free: Condvar,
}

impl Database {
    /// The database at `config.path`, shared with other stores of this process.
    pub(super) fn open_shared(
        config: &SqliteConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Database>> {
        if config.path.as_os_str().is_empty() {
            return Err(Error::config("sqlite.path is empty; name a database file"));
        }
        let path = absolute(&config.path, "sqlite path")?;
        if path.file_name().is_none() {
            return Err(Error::config(format!(
                "sqlite path {} does not name a file",
                path.display()
            )));
        }
        OPEN.get_or_open(&path, |path| {
            Database::open(path.to_path_buf(), config, clock)
        })
    }

    fn open(path: PathBuf, config: &SqliteConfig, clock: Arc<dyn Clock>) -> Result<Arc<Database>> {
        // Checked here, under the registry's lock, so a store of this
        // process that is creating the file meanwhile is found instead.
        if !config.create_if_missing && !path.exists() {
            return Err(Error::NoStore { path });
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::backend(
                    BACKEND,
                    format!("creating the directory {}", parent.display()),
                    e,
                )
            })?;
        }
        let conn = connect(&path)?;
        let synchronous = if config.sync_writes { "FULL" } else { "NORMAL" };
        let setup = format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};");
        conn.execute_batch(&setup)
            .map_err(|e| sqlite_error(&path, "setting up", e))?;
        create_schema(&conn, &path)?;
        let database = Arc::new(Database {
            path,
            writer: Mutex::new(conn),
            queued: Mutex::new(Vec::new()),
            stop_sweeps: Mutex::new(None),
            sweeper: Mutex::new(None),
            readers: Mutex::new(ReadPool::default()),
            reader_free: Condvar::new(),
        });
        let interval = config.cleanup_interval;
        if !interval.is_zero() {
            let (stop, stopped) = mpsc::channel();
            // The thread holds only a weak reference: the database closes
            // when its last store does, and the thread then ends.
            let weak = Arc::downgrade(&database);
            let sweeper = std::thread::Builder::new()
                .name("kvs-sqlite-sweep".into())
                .spawn(move || sweep_loop(&weak, &stopped, interval, clock.as_ref()))
                .map_err(|e| Error::backend(BACKEND, "starting the sweep thread", e))?;
            *database.stop_sweeps.lock() = Some(stop);
            *database.sweeper.lock() = Some(sweeper);
        }
        Ok(database)
    }

    pub(super) fn error(&self, what: &str, e: rusqlite::Error) -> Error {
        sqlite_error(&self.path, what, e)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Every write has been answered: each in-flight write holds the
        // database. Stopping the sweep is all that is left.
        drop(self.stop_sweeps.lock().take());
        if let Some(sweeper) = self.sweeper.lock().take() {
            // The last reference may be the sweep's own, taken for a sweep.
            if sweeper.thread().id() != std::thread::current().id() && sweeper.join().is_err() {
                tracing::error!(path = %self.path.display(), "kvs sqlite sweep thread panicked");
            }
        }
        self.readers.lock().idle.clear();
    }
}

pub(super) fn connect(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| sqlite_error(path, "opening", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sqlite_error(path, "configuring", e))?;
    // The query planner's stability guarantee: a statement keeps its plan
    // whatever values are bound. Without it, SQLite (built with STAT4, as
    // rusqlite's bundled build is) marks a range on the second column of
    // the (namespace, key) primary key as depending on the bound values,
    // and the statement cache's clear-bindings then forces a full
    // re-prepare of every list, count and page query on each use: 8.5 µs
    // instead of 1.7 µs per 100-key listing, measured. Every statement
    // here has one right plan (the primary key, or the expiry index).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(|e| sqlite_error(path, "configuring", e))?;
    Ok(conn)
}

/// The one mapping of SQLite's errors: a busy or locked database (another
/// connection or process holds the lock past the busy timeout) is worth
/// retrying; anything else is not.
pub(super) fn sqlite_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    let temporary = is_busy(&e);
    Error::backend(BACKEND, format!("{what} {}", path.display()), e).temporary_if(temporary)
}

/// Whether `e` says the database is busy or locked.
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
