//! rusty-leveldb through its own async API (`AsyncDB`, which runs the
//! database on a thread of its own), writing as the kvs store it is
//! compared with does: on kvs's file system (`kvs::raw::leveldb_env`),
//! every write flushed to the operating system and, when durable,
//! `fdatasync`ed; a fresh log per open. The buffered form (rusty-leveldb's
//! defaults: writes wait in a user-space buffer) is kept for reference and
//! labelled as not like for like.

use crate::subject::{OpError, OpResult, Subject};
use rusty_leveldb::{AsyncDB, Options, WriteBatch};
use std::path::Path;

/// `rusty_leveldb::AsyncDB`.
pub struct RustyLevelDb {
    db: AsyncDB,
    /// Every `set` is a one-entry batch written with `sync = true` (which
    /// flushes the log), as kvs writes; otherwise a buffered `put`.
    flushed: bool,
}

/// How a [`RustyLevelDb`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// rusty-leveldb's defaults: `put` into a user-space buffer.
    Buffered,
    /// As kvs without `sync_writes`: each write reaches the OS.
    Flushed,
    /// As kvs with `sync_writes`: each write is `fdatasync`ed.
    Synced,
}

impl RustyLevelDb {
    /// A database in the directory `path`.
    pub fn open(path: &Path, writes: Writes) -> OpResult<RustyLevelDb> {
        let mut options = Options {
            create_if_missing: true,
            ..Options::default()
        };
        if writes != Writes::Buffered {
            options.env = std::rc::Rc::new(kvs::raw::leveldb_env(writes == Writes::Synced));
            options.reuse_logs = false;
        }
        let db =
            AsyncDB::new(path, options).map_err(|e| OpError::failed("rusty-leveldb open", e))?;
        Ok(RustyLevelDb {
            db,
            flushed: writes != Writes::Buffered,
        })
    }
}

impl Subject for RustyLevelDb {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        if self.flushed {
            let mut batch = WriteBatch::default();
            batch.put(key.as_bytes(), value);
            return self
                .db
                .write(batch, true)
                .await
                .map_err(|e| OpError::failed("rusty-leveldb write", e));
        }
        self.db
            .put(key.as_bytes().to_vec(), value.to_vec())
            .await
            .map_err(|e| OpError::failed("rusty-leveldb put", e))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        self.db
            .get(key.as_bytes().to_vec())
            .await
            .map(|v| v.map(|v| v.len()))
            .map_err(|e| OpError::failed("rusty-leveldb get", e))
    }

    async fn list(&self, _prefix: &str) -> OpResult<usize> {
        Err(OpError::Unsupported(
            "rusty-leveldb's AsyncDB has no iterator (only get/put/delete/write)",
        ))
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        self.list(prefix).await
    }

    /// One write batch per 1,000 entries.
    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        for chunk in entries.chunks(1_000) {
            let mut batch = WriteBatch::default();
            for (k, v) in chunk {
                batch.put(k.as_bytes(), v);
            }
            self.db
                .write(batch, false)
                .await
                .map_err(|e| OpError::failed("rusty-leveldb write", e))?;
        }
        Ok(())
    }
}
