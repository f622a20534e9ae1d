//! The writer: group commit on the one write connection of a database.
//!
//! A write joins the database's queue and a blocking task is spawned to
//! commit it. Whichever task holds the write connection commits every
//! write queued so far in one transaction (flat combining), so with
//! `sync_writes: true` many tasks writing at once share each `fsync`,
//! while a lone write costs no more than a direct call.
//!
//! Each queued write carries its own reply channel, typed by what the
//! write answers ([`Write::Output`]); the queue holds them behind the
//! object-safe [`Queued`].

use super::database::{is_busy, sqlite_error, Database};
use super::writes::Write;
use super::{SqliteStore, BACKEND};
use crate::{Error, Result, StoreFuture};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Writes committed in one transaction at most.
const MAX_BATCH: usize = 1024;

/// A write waiting in the queue, with the namespace it writes to.
pub(super) struct Command {
    namespace: Arc<str>,
    write: Box<dyn Queued>,
}

/// A queued write, whatever its answer's type.
trait Queued: Send {
    fn single_statement(&self) -> bool;
    /// Applies the write and keeps its answer until the batch is settled;
    /// returns whether it succeeded.
    fn apply(&mut self, conn: &Connection, path: &Path, namespace: &str) -> bool;
    /// Sends the kept answer: the batch was committed.
    fn answer(self: Box<Self>);
    /// Sends `error` instead: the batch was not committed.
    fn fail(self: Box<Self>, error: Error);
}

/// A write of type `W`, its reply channel, and its answer once applied.
struct Pending<W: Write> {
    write: W,
    done: oneshot::Sender<Result<W::Output>>,
    /// `Some` once applied.
    result: Option<Result<W::Output>>,
}

impl<W: Write> Queued for Pending<W> {
    fn single_statement(&self) -> bool {
        W::SINGLE_STATEMENT
    }

    fn apply(&mut self, conn: &Connection, path: &Path, namespace: &str) -> bool {
        let result = self
            .write
            .apply(conn, namespace)
            .map_err(|e| sqlite_error(path, "writing to", e))
            .and_then(|answer| answer);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>) {
        let result = self.result.unwrap_or_else(|| {
            Err(Error::backend(
                BACKEND,
                "writing",
                "a write was answered before it was applied",
            ))
        });
        let _ = self.done.send(result);
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.done.send(Err(error));
    }
}

impl SqliteStore {
    /// Queues `write` for the next commit and answers with its outcome.
    pub(super) fn write<W: Write>(&self, write: W) -> StoreFuture<'_, W::Output> {
        let database = match self.database() {
            Ok(db) => db,
            Err(e) => return StoreFuture::ready(Err(e)),
        };
        let (done, answer) = oneshot::channel();
        let command = Command {
            namespace: Arc::clone(&self.namespace),
            write: Box::new(Pending {
                write,
                done,
                result: None,
            }),
        };
        StoreFuture::boxed(async move {
            database.queued.lock().push(command);
            // This task commits whatever is queued when it gets the write
            // connection, which may be nothing if an earlier holder already
            // committed our write with its own.
            tokio::task::spawn_blocking(move || database.commit_queued());
            // A queued write is dropped unanswered only if its commit task
            // could not run (the runtime is shutting down).
            answer.await.unwrap_or(Err(Error::Closed))
        })
    }
}

impl Database {
    /// Commits every queued write, in batches of at most `MAX_BATCH`, on
    /// the write connection. Runs on the blocking pool.
    pub(super) fn commit_queued(&self) {
        let conn = self.writer.lock();
        loop {
            let batch: Vec<Command> = {
                let mut queued = self.queued.lock();
                let take = queued.len().min(MAX_BATCH);
                queued.drain(..take).collect()
            };
            if batch.is_empty() {
                return;
            }
            commit(&conn, &self.path, batch);
        }
    }
}

/// Applies `batch` in one transaction and answers each command.
///
/// A write that fails has no effect and fails only its own command; if the
/// commit fails, every command fails.
fn commit(conn: &Connection, path: &Path, mut batch: Vec<Command>) {
    // A lone one-statement write is its own transaction: no BEGIN/COMMIT
    // round. Anything else runs in one IMMEDIATE transaction, which makes
    // read-modify-write operations atomic across processes too.
    if batch.len() == 1 && batch[0].write.single_statement() {
        if let Some(mut command) = batch.pop() {
            let _ = command.write.apply(conn, path, &command.namespace);
            command.write.answer();
        }
        return;
    }
    if let Err(e) = run(conn, "BEGIN IMMEDIATE") {
        fail_all(path, "starting a write to", e, batch);
        return;
    }
    let settled = batch
        .iter_mut()
        .try_for_each(|command| apply_in_transaction(conn, path, command))
        .and_then(|()| run(conn, "COMMIT").map_err(|e| ("committing to", e)));
    match settled {
        Ok(()) => batch.into_iter().for_each(|c| c.write.answer()),
        Err((what, e)) => {
            let _ = run(conn, "ROLLBACK");
            fail_all(path, what, e, batch);
        }
    }
}

/// Applies one command inside the batch's transaction. A write that fails
/// is undone (SQLite undoes a failed statement by itself; a write of
/// several statements goes back to its savepoint), so the rest of the
/// batch commits without it. `Err` only if the transaction cannot go on.
fn apply_in_transaction(
    conn: &Connection,
    path: &Path,
    command: &mut Command,
) -> std::result::Result<(), (&'static str, rusqlite::Error)> {
    let savepoint = !command.write.single_statement();
    if savepoint {
        run(conn, "SAVEPOINT kvs_write").map_err(|e| ("starting a write to", e))?;
    }
    let applied = command.write.apply(conn, path, &command.namespace);
    // Some failures (a full disk, an I/O error) make SQLite roll the whole
    // transaction back; what follows would then commit on its own while
    // the writes before it were lost. Fail the batch instead.
    if !applied && conn.is_autocommit() {
        return Err(("writing to", rolled_back()));
    }
    if savepoint {
        if !applied {
            run(conn, "ROLLBACK TO kvs_write").map_err(|e| ("undoing a failed write to", e))?;
        }
        run(conn, "RELEASE kvs_write").map_err(|e| ("writing to", e))?;
    }
    Ok(())
}

/// The error of a batch whose transaction SQLite rolled back by itself.
fn rolled_back() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT_ROLLBACK),
        Some("SQLite rolled the transaction back after a write failed".into()),
    )
}

/// Runs one parameterless statement (cached: these run on every batch).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Answers every command with the same failure (one source, shared).
fn fail_all(path: &Path, what: &str, e: rusqlite::Error, batch: Vec<Command>) {
    let temporary = is_busy(&e);
    let source = Arc::new(e);
    for command in batch {
        let error = Error::backend(
            BACKEND,
            format!("{what} {}", path.display()),
            Arc::clone(&source),
        );
        command.write.fail(error.temporary_if(temporary));
    }
}
