//! rusqlite, used as a careful async application would: the same table
//! and pragmas as kvs, reads on the blocking pool from a small pool of
//! connections, writes on one connection (SQLite has one writer anyway).

use crate::subject::{OpError, OpResult, Subject};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// rusqlite through `spawn_blocking`.
pub struct Rusqlite {
    writer: Arc<Mutex<Connection>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next: AtomicUsize,
}

fn open(path: &Path, durable: bool) -> OpResult<Connection> {
    let conn = Connection::open(path).map_err(|e| OpError::failed("rusqlite open", e))?;
    let sync = if durable { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=5000;
         CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    ))
    .map_err(|e| OpError::failed("rusqlite schema", e))?;
    Ok(conn)
}

/// Runs `f` on `conn` on the blocking pool.
async fn blocking<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> OpResult<T> {
    let conn = Arc::clone(conn);
    tokio::task::spawn_blocking(move || {
        let conn = conn
            .lock()
            .map_err(|_| OpError::Failed("a rusqlite connection lock was poisoned".into()))?;
        f(&conn).map_err(|e| OpError::failed("rusqlite", e))
    })
    .await
    .map_err(|e| OpError::failed("spawn_blocking", e))?
}

impl Rusqlite {
    /// A database at `path`; `durable` is `synchronous=FULL`, else NORMAL.
    pub fn open(path: &Path, durable: bool) -> OpResult<Rusqlite> {
        let writer = Arc::new(Mutex::new(open(path, durable)?));
        let readers = (0..4)
            .map(|_| open(path, durable).map(|c| Arc::new(Mutex::new(c))))
            .collect::<OpResult<_>>()?;
        Ok(Rusqlite {
            writer,
            readers,
            next: AtomicUsize::new(0),
        })
    }

    fn reader(&self) -> &Arc<Mutex<Connection>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.readers[turn % self.readers.len()]
    }
}

impl Subject for Rusqlite {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        let (key, value) = (key.to_owned(), value.to_vec());
        blocking(&self.writer, move |c| {
            c.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
                .execute(params![key, value])
                .map(drop)
        })
        .await
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        let key = key.to_owned();
        blocking(self.reader(), move |c| {
            c.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                .query_row(params![key], |row| row.get::<_, Vec<u8>>(0))
                .optional()
                .map(|v| v.map(|v| v.len()))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        let (low, high) = range(prefix);
        blocking(self.reader(), move |c| {
            let mut stmt =
                c.prepare_cached("SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key")?;
            let keys = stmt
                .query_map(params![low, high], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(keys.len())
        })
        .await
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        let (low, high) = range(prefix);
        blocking(self.reader(), move |c| {
            c.prepare_cached("SELECT count(*) FROM kv WHERE key >= ?1 AND key < ?2")?
                .query_row(params![low, high], |row| row.get::<_, i64>(0))
                .map(|n| usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// One transaction per 1,000 entries.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        blocking(&self.writer, move |c| {
            for chunk in entries.chunks(1_000) {
                let tx = c.unchecked_transaction()?;
                {
                    let mut stmt = tx
                        .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?;
                    for (k, v) in chunk {
                        stmt.execute(params![k, v])?;
                    }
                }
                tx.commit()?;
            }
            Ok(())
        })
        .await
    }
}

/// The key range of `prefix` (the workload's prefixes are ASCII digits,
/// so the last byte can be bumped).
fn range(prefix: &str) -> (String, String) {
    let mut high = prefix.as_bytes().to_vec();
    if let Some(last) = high.last_mut() {
        *last += 1;
    }
    (
        prefix.to_owned(),
        String::from_utf8_lossy(&high).into_owned(),
    )
}
