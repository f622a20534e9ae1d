//! The schema (see the module docs of the backend) and its version.

use super::database::sqlite_error;
use super::BACKEND;
use crate::{Error, Result};
use rusqlite::Connection;
use std::path::Path;

/// The schema version in `PRAGMA user_version`.
pub(super) const SCHEMA_VERSION: i64 = 1;

pub(super) fn create_schema(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| sqlite_error(path, "reading the schema version of", e))?;
    if version > SCHEMA_VERSION {
        return Err(Error::backend(
            BACKEND,
            format!("opening {}", path.display()),
            format!("its kvs schema version is {version}, newer than this kvs understands ({SCHEMA_VERSION}); upgrade kvs"),
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE takes the write lock at once (waiting up to the busy
    // timeout), so two processes creating the schema together take turns
    // instead of one failing with "database is locked".
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS kvs (
             namespace  TEXT    NOT NULL,
             key        TEXT    NOT NULL,
             value      BLOB    NOT NULL,
             expires_at INTEGER,
             PRIMARY KEY (namespace, key)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
         CREATE TABLE IF NOT EXISTS kvs_docs (
             namespace  TEXT    NOT NULL,
             collection TEXT    NOT NULL,
             id         TEXT    NOT NULL,
             body       TEXT    NOT NULL,
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL,
             PRIMARY KEY (namespace, collection, id)
         ) WITHOUT ROWID;
         PRAGMA user_version = 1;
         COMMIT;",
    )
    .map_err(|e| sqlite_error(path, "creating the schema in", e))
}
