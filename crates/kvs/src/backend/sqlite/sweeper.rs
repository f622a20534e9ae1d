//! The expiry sweep: a thread per database that deletes expired rows
//! every `cleanup_interval`, through the partial index on `expires_at`.

use super::database::Database;
use super::to_sql_time;
use crate::expiry::Clock;
use rusqlite::{params, Connection};
use std::sync::mpsc;
use std::time::Duration;

/// Expired rows deleted per sweep statement, so writes can interleave.
const SWEEP_BATCH: usize = 1000;

/// Sweeps expired rows every `interval` until told to stop (or the
/// database is gone).
pub(super) fn sweep_loop(
    database: &std::sync::Weak<Database>,
    stopped: &mpsc::Receiver<()>,
    interval: Duration,
    clock: &dyn Clock,
) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let Some(database) = database.upgrade() else {
            return;
        };
        let conn = database.writer.lock();
        if let Err(e) = sweep(&conn, clock.now_ms()) {
            tracing::warn!(path = %database.path.display(), error = %e, "kvs sqlite expiry sweep failed");
        }
    }
}

/// Deletes rows whose deadline has passed, in batches, through the
/// `kvs_expiry` index; returns how many.
pub(super) fn sweep(conn: &Connection, now_ms: u64) -> rusqlite::Result<usize> {
    let now = to_sql_time(now_ms).unwrap_or(i64::MAX);
    let mut removed = 0;
    loop {
        let n = conn
            .prepare_cached(
                "DELETE FROM kvs WHERE (namespace, key) IN \
                 (SELECT namespace, key FROM kvs WHERE expires_at < ?1 LIMIT ?2)",
            )?
            .execute(params![now, SWEEP_BATCH as i64])?;
        removed += n;
        if n < SWEEP_BATCH {
            return Ok(removed);
        }
    }
}
