//! The read connections of a database: at most `READ_SLOTS`, each given
//! back to the pool when its read is done.

use super::database::{connect, Database};
use crate::Result;
use rusqlite::Connection;

/// Read connections per database: the most reads that run at once.
pub(super) const READ_SLOTS: usize = 4;

/// The read connections of a [`Database`].
#[derive(Default)]
pub(super) struct ReadPool {
    pub(super) idle: Vec<Connection>,
    /// Idle and in use.
    pub(super) open: usize,
}

/// A read connection, given back to the pool when dropped (also when the
/// read panicked: the connection holds no state of the read).
pub(super) struct Reader<'a> {
    database: &'a Database,
    /// `Some` until dropped.
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Invariant: `conn` is `Some` from creation until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.database.readers.lock().idle.push(conn);
            self.database.reader_free.notify_one();
        }
    }
}

impl Database {
    /// A read connection: an idle one, a new one while fewer than
    /// `READ_SLOTS` are open, or else the next one given back. Blocks, so
    /// it runs on the blocking pool.
    pub(super) fn reader(&self) -> Result<Reader<'_>> {
        let mut pool = self.readers.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Reader {
                    database: self,
                    conn: Some(conn),
                });
            }
            if pool.open < READ_SLOTS {
                pool.open += 1;
                drop(pool);
                return match connect(&self.path) {
                    Ok(conn) => Ok(Reader {
                        database: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        // Another read may succeed where this one failed.
                        self.readers.lock().open -= 1;
                        self.reader_free.notify_one();
                        Err(e)
                    }
                };
            }
            self.reader_free.wait(&mut pool);
        }
    }
}
