//! The schema (see the module docs of the backend), its version, and the
//! migration of files written by earlier versions.
//!
//! | version | `kvs` table                                                  |
//! |---------|--------------------------------------------------------------|
//! | 1       | `WITHOUT ROWID`, keyed by `(namespace, key)` (kvs 0.1)        |
//! | 2       | a rowid table with a unique index on `(namespace, key)`      |
//!
//! Version 1 kept its rows in the primary-key B-tree, where SQLite keeps
//! only about 1 KB of a row on its page: every value above that spilled into
//! overflow pages that each upsert read and rewrote. A rowid table keeps up
//! to about 4 KB of a row on its page. Measured on a 2-core VM, one
//! connection, 10,000 keys (`synchronous = NORMAL`): 4 KB upserts went from
//! about 28 k/s to 95 k/s, 4 KB reads from 50 k/s to 130 k/s, and listing 100
//! keys with 4 KB values from 5 k/s to 24 k/s; 100-byte values measured the
//! same within noise. Values in a table of their own (keys in a small
//! `WITHOUT ROWID` table) listed faster (60 k/s) but read and wrote at about
//! half the rowid table's rate, so the rowid table it is. `expires_at` comes
//! before `value`, so that a liveness check never reads a value's overflow
//! pages.

use super::database::sqlite_error;
use super::BACKEND;
use crate::{Error, Result};
use rusqlite::Connection;
use std::path::Path;

/// The schema version in `PRAGMA user_version`.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// The key-value table and its indexes, as of [`SCHEMA_VERSION`].
const KVS_TABLE: &str = "
    CREATE TABLE kvs (
        id         INTEGER PRIMARY KEY,
        namespace  TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        expires_at INTEGER,
        value      BLOB    NOT NULL
    );
    CREATE UNIQUE INDEX kvs_key ON kvs (namespace, key);
    CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;";

/// The documents table; unchanged since version 1.
const DOCS_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS kvs_docs (
        namespace  TEXT    NOT NULL,
        collection TEXT    NOT NULL,
        id         TEXT    NOT NULL,
        body       TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, collection, id)
    ) WITHOUT ROWID;";

/// Version 1 to 2: the rows move to a rowid table, in one transaction.
const MIGRATE_1_TO_2: &str = "
    CREATE TABLE kvs_v2 (
        id         INTEGER PRIMARY KEY,
        namespace  TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        expires_at INTEGER,
        value      BLOB    NOT NULL
    );
    INSERT INTO kvs_v2 (namespace, key, expires_at, value)
        SELECT namespace, key, expires_at, value FROM kvs ORDER BY namespace, key;
    DROP TABLE kvs;
    ALTER TABLE kvs_v2 RENAME TO kvs;
    CREATE UNIQUE INDEX kvs_key ON kvs (namespace, key);
    CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;";

fn version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| sqlite_error(path, "reading the schema version of", e))
}

/// Brings the file to [`SCHEMA_VERSION`]: creates the schema in a new file,
/// migrates one of an earlier version, refuses one of a later version.
///
/// Invariant: the file is at one version or the next, never between. Each
/// step is one transaction, which SQLite makes atomic across a crash (a
/// `kill -9` in the middle leaves the old layout, and the next open runs
/// the step again), and `BEGIN IMMEDIATE` takes the write lock first, so of
/// two processes opening an old file at once, one migrates while the other
/// waits (up to the busy timeout) and then finds the file current. The
/// version is read again under the lock for that reason.
pub(super) fn create_schema(conn: &Connection, path: &Path) -> Result<()> {
    let seen = version(conn, path)?;
    check_not_newer(seen, path)?;
    if seen == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| sqlite_error(path, "locking for a schema change", e))?;
    match upgrade(conn, path) {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(|e| sqlite_error(path, "committing the schema of", e)),
        Err(e) => {
            // Nothing of a failed step stays; the file keeps its version.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn check_not_newer(version: i64, path: &Path) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::backend(
            BACKEND,
            format!("opening {}", path.display()),
            format!("its kvs schema version is {version}, newer than this kvs understands ({SCHEMA_VERSION}); upgrade kvs"),
        ));
    }
    Ok(())
}

/// The steps from the file's version to [`SCHEMA_VERSION`], inside the
/// caller's transaction.
fn upgrade(conn: &Connection, path: &Path) -> Result<()> {
    let current = version(conn, path)?;
    check_not_newer(current, path)?;
    let has_kvs: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'kvs'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| sqlite_error(path, "reading the schema of", e))?;
    match (current, has_kvs) {
        // Another process finished it while this one waited for the lock.
        (SCHEMA_VERSION, _) => return Ok(()),
        // A new (or empty) file.
        (0, false) => conn
            .execute_batch(KVS_TABLE)
            .map_err(|e| sqlite_error(path, "creating the schema in", e))?,
        // Version 1 (a version-0 file with a `kvs` table is one of kvs's
        // earliest, which set no version).
        (0 | 1, true) => {
            let started = std::time::Instant::now();
            conn.execute_batch(MIGRATE_1_TO_2)
                .map_err(|e| sqlite_error(path, "migrating (schema 1 to 2)", e))?;
            tracing::info!(
                path = %path.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "kvs sqlite: migrated the key-value table to schema version 2"
            );
        }
        (version, _) => {
            return Err(Error::backend(
                BACKEND,
                format!("opening {}", path.display()),
                format!(
                    "its kvs schema version {version} lacks the kvs table; is it a kvs database?"
                ),
            ))
        }
    }
    conn.execute_batch(DOCS_TABLE)
        .map_err(|e| sqlite_error(path, "creating the schema in", e))?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(|e| sqlite_error(path, "setting the schema version of", e))
}
