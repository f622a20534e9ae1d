//! [`Pending`]: the writes gathered for one LevelDB write batch.

use super::records::{data_key, expiry_key, record, record_deadline};
use crate::deadline::{is_live, NEVER};
use rusty_leveldb::{WriteBatch, DB};
use std::collections::HashMap;

/// Writes gathered for one write batch, with the expiry index kept in step.
///
/// Invariant: `deadlines` holds every key staged in `batch`, so a later
/// write in the same batch finds the expiry entry an earlier one staged
/// (the database does not show it until the batch is written).
pub(super) struct Pending {
    pub(super) batch: WriteBatch,
    /// Deadlines (or `None`: deleted) of keys written in this batch.
    deadlines: HashMap<String, Option<u64>>,
    /// Whether the database or this batch may hold an expiry entry (see
    /// `Worker::expiring`). While neither does, a replaced record has no
    /// entry to drop, so `set` does not read it.
    pub(super) expiring: bool,
}

impl Pending {
    /// An empty batch for a database that may (`expiring`) or cannot hold
    /// an expiry entry.
    pub(super) fn new(expiring: bool) -> Pending {
        Pending {
            batch: WriteBatch::default(),
            deadlines: HashMap::new(),
            expiring,
        }
    }

    /// Whether nothing is staged.
    pub(super) fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    /// Stages `key = value` with `expires_at`, keeping the expiry index in step.
    pub(super) fn set(&mut self, db: &mut DB, key: String, value: &[u8], expires_at: u64) {
        if self.expiring {
            if let Some(old) = self.deadline(db, &key).filter(|d| *d != NEVER) {
                self.batch.delete(&expiry_key(old, &key));
            }
        }
        if expires_at != NEVER {
            self.batch.put(&expiry_key(expires_at, &key), b"");
            self.expiring = true;
        }
        self.batch.put(&data_key(&key), &record(value, expires_at));
        self.deadlines.insert(key, Some(expires_at));
    }

    /// Stages the removal of `key` and its expiry entry; returns the
    /// deadline it had, if it existed.
    pub(super) fn delete(&mut self, db: &mut DB, key: String) -> Option<u64> {
        let old = self.deadline(db, &key);
        if let Some(old) = old {
            if old != NEVER {
                self.batch.delete(&expiry_key(old, &key));
            }
            self.batch.delete(&data_key(&key));
        }
        self.deadlines.insert(key, None);
        old
    }

    /// Like [`Pending::delete`]; returns whether the key was live at `now_ms`.
    pub(super) fn delete_live(&mut self, db: &mut DB, key: String, now_ms: u64) -> bool {
        self.delete(db, key).is_some_and(|d| is_live(d, now_ms))
    }

    /// The current deadline of `key`: from this batch, else from the database.
    fn deadline(&self, db: &mut DB, key: &str) -> Option<u64> {
        match self.deadlines.get(key) {
            Some(deadline) => *deadline,
            None => db.get(&data_key(key)).and_then(|r| record_deadline(&r)),
        }
    }
}
