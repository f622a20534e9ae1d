//! The writes of the SQLite backend: one type per write, with its SQL and
//! the type of its answer. The writer applies them (see `writer.rs`).

use crate::generic::next_counter;
use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// Stores ?3 under key ?2 of namespace ?1 with deadline ?4.
///
/// Not `INSERT OR REPLACE`: on this table (a partial index on
/// `expires_at`, values past the page) it ran at 0.3–0.6× this upsert on
/// single sets, measured.
pub(super) const UPSERT_SQL: &str = "INSERT INTO kvs (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";

/// A write the writer applies on the write connection, for one namespace.
pub(super) trait Write: Send + 'static {
    /// What the write answers.
    type Output: Send + 'static;

    /// Whether the write is one statement, which SQLite makes atomic
    /// without a transaction or savepoint of its own.
    const SINGLE_STATEMENT: bool;

    /// Performs the write. The outer error is SQLite's; the inner result
    /// carries the refusals that are not (a missing key, a value that is
    /// not a counter). The writer undoes whatever a failed write did.
    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<Self::Output>>;
}

/// `set`: deadline `expires_at` (`None`: never).
pub(super) struct Set {
    pub(super) key: String,
    pub(super) value: Vec<u8>,
    pub(super) expires_at: Option<i64>,
}

impl Write for Set {
    type Output = ();
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        conn.prepare_cached(UPSERT_SQL)?.execute(params![
            namespace,
            self.key,
            self.value,
            self.expires_at
        ])?;
        Ok(Ok(()))
    }
}

/// `delete`.
pub(super) struct Delete {
    pub(super) key: String,
}

impl Write for Delete {
    type Output = ();
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        conn.prepare_cached("DELETE FROM kvs WHERE namespace = ?1 AND key = ?2")?
            .execute(params![namespace, self.key])?;
        Ok(Ok(()))
    }
}

/// `set_many`: every entry with one deadline.
pub(super) struct SetMany {
    pub(super) entries: Vec<(String, Vec<u8>)>,
    pub(super) expires_at: Option<i64>,
}

impl Write for SetMany {
    type Output = ();
    const SINGLE_STATEMENT: bool = false;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        let mut upsert = conn.prepare_cached(UPSERT_SQL)?;
        for (key, value) in &self.entries {
            upsert.execute(params![namespace, key, value, self.expires_at])?;
        }
        Ok(Ok(()))
    }
}

/// `delete_many`: answers with the number of live keys deleted.
pub(super) struct DeleteMany {
    pub(super) keys: Vec<String>,
    pub(super) now: i64,
}

impl Write for DeleteMany {
    type Output = usize;
    const SINGLE_STATEMENT: bool = false;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<usize>> {
        let mut seen = std::collections::HashSet::new();
        let mut deleted = 0;
        for key in self.keys.iter().filter(|k| seen.insert(k.as_str())) {
            deleted += conn
                .prepare_cached(
                    "DELETE FROM kvs WHERE namespace = ?1 AND key = ?2 \
                     AND (expires_at IS NULL OR expires_at >= ?3)",
                )?
                .execute(params![namespace, key, self.now])?;
            // An expired leftover goes too, uncounted.
            conn.prepare_cached("DELETE FROM kvs WHERE namespace = ?1 AND key = ?2")?
                .execute(params![namespace, key])?;
        }
        Ok(Ok(deleted))
    }
}

/// `compare_and_swap` (and `set_if_absent`: `expected: None` means
/// "absent"): answers with whether it swapped.
pub(super) struct CompareAndSwap {
    pub(super) key: String,
    pub(super) expected: Option<Vec<u8>>,
    pub(super) value: Vec<u8>,
    pub(super) expires_at: Option<i64>,
    pub(super) now: i64,
}

impl Write for CompareAndSwap {
    type Output = bool;
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<bool>> {
        let changed = match &self.expected {
            // Inserts, or replaces an expired row; a live row stays.
            None => conn
                .prepare_cached(
                    "INSERT INTO kvs (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (namespace, key) DO UPDATE \
                     SET value = excluded.value, expires_at = excluded.expires_at \
                     WHERE kvs.expires_at IS NOT NULL AND kvs.expires_at < ?5",
                )?
                .execute(params![
                    namespace,
                    self.key,
                    self.value,
                    self.expires_at,
                    self.now
                ])?,
            Some(expected) => conn
                .prepare_cached(
                    "UPDATE kvs SET value = ?3, expires_at = ?4 \
                     WHERE namespace = ?1 AND key = ?2 AND value = ?5 \
                     AND (expires_at IS NULL OR expires_at >= ?6)",
                )?
                .execute(params![
                    namespace,
                    self.key,
                    self.value,
                    self.expires_at,
                    expected,
                    self.now
                ])?,
        };
        Ok(Ok(changed == 1))
    }
}

/// `increment`: answers with the new value; keeps the key's deadline.
pub(super) struct Increment {
    pub(super) key: String,
    pub(super) delta: i64,
    pub(super) now: i64,
}

impl Write for Increment {
    type Output = i64;
    const SINGLE_STATEMENT: bool = false;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<i64>> {
        let current: Option<(Vec<u8>, Option<i64>)> = conn
            .prepare_cached(
                "SELECT value, expires_at FROM kvs WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?3)",
            )?
            .query_row(params![namespace, self.key, self.now], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let next = match next_counter(&self.key, current.as_ref().map(|(v, _)| &v[..]), self.delta)
        {
            Ok(next) => next,
            Err(e) => return Ok(Err(e)),
        };
        let expires_at = current.and_then(|(_, expires_at)| expires_at);
        conn.prepare_cached(UPSERT_SQL)?.execute(params![
            namespace,
            self.key,
            next.to_string().into_bytes(),
            expires_at
        ])?;
        Ok(Ok(next))
    }
}

/// `expire`: `NotFound` unless the key is live.
pub(super) struct Expire {
    pub(super) key: String,
    pub(super) expires_at: Option<i64>,
    pub(super) now: i64,
}

impl Write for Expire {
    type Output = ();
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<()>> {
        let changed = conn
            .prepare_cached(
                "UPDATE kvs SET expires_at = ?3 WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?4)",
            )?
            .execute(params![namespace, self.key, self.expires_at, self.now])?;
        Ok(if changed == 0 {
            Err(Error::NotFound)
        } else {
            Ok(())
        })
    }
}

/// `get_and_touch`: `expire` that answers with the value, in the same
/// statement (`RETURNING`), so no write can land between the two.
pub(super) struct GetAndTouch {
    pub(super) key: String,
    pub(super) expires_at: Option<i64>,
    pub(super) now: i64,
}

impl Write for GetAndTouch {
    type Output = Vec<u8>;
    const SINGLE_STATEMENT: bool = true;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<Vec<u8>>> {
        let value = conn
            .prepare_cached(
                "UPDATE kvs SET expires_at = ?3 WHERE namespace = ?1 AND key = ?2 \
                 AND (expires_at IS NULL OR expires_at >= ?4) RETURNING value",
            )?
            .query_row(
                params![namespace, self.key, self.expires_at, self.now],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .optional()?;
        Ok(value.ok_or(Error::NotFound))
    }
}

/// `delete_prefix`: the keys in `[start, end)`; answers with the number
/// of live keys deleted.
pub(super) struct DeletePrefix {
    pub(super) start: String,
    pub(super) end: rusqlite::types::Value,
    pub(super) now: i64,
}

impl Write for DeletePrefix {
    type Output = usize;
    const SINGLE_STATEMENT: bool = false;

    fn apply(&self, conn: &Connection, namespace: &str) -> rusqlite::Result<Result<usize>> {
        let deleted = conn
            .prepare_cached(
                "DELETE FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3 \
                 AND (expires_at IS NULL OR expires_at >= ?4)",
            )?
            .execute(params![namespace, self.start, self.end, self.now])?;
        conn.prepare_cached("DELETE FROM kvs WHERE namespace = ?1 AND key >= ?2 AND key < ?3")?
            .execute(params![namespace, self.start, self.end])?;
        Ok(Ok(deleted))
    }
}
