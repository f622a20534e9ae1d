//! The operations of the database thread, one method each. A method that
//! writes stages its writes in one [`Pending`](super::batch::Pending) batch and writes it before
//! it answers; none is interleaved with another request.

use super::records::{data_key, record_deadline, DATA, EXPIRY, HEADER};
use super::thread::{leveldb_error, Worker};
use crate::deadline::{is_live, NEVER};
use crate::generic::next_counter;
use crate::{Error, Result};
use bytes::Bytes;
use rusty_leveldb::{LdbIterator, WriteBatch};

/// Expired keys deleted per write batch by the sweep.
const SWEEP_BATCH: usize = 1000;

/// Whether `record` is live at `now_ms`.
fn live(record: &[u8], now_ms: u64) -> bool {
    record_deadline(record).is_some_and(|d| is_live(d, now_ms))
}

impl Worker {
    /// The live record of `key`.
    fn live_record(&mut self, key: &str, now_ms: u64) -> Result<Option<Bytes>> {
        Ok(self
            .db()?
            .get(&data_key(key))
            .filter(|record| live(record, now_ms)))
    }

    pub(super) fn get(&mut self, key: &str, now_ms: u64) -> Result<Option<Bytes>> {
        Ok(self.live_record(key, now_ms)?.map(|r| r.slice(HEADER..)))
    }

    /// The deadline of a live key.
    pub(super) fn deadline(&mut self, key: &str, now_ms: u64) -> Result<Option<u64>> {
        Ok(self
            .db()?
            .get(&data_key(key))
            .and_then(|record| record_deadline(&record))
            .filter(|d| is_live(*d, now_ms)))
    }

    pub(super) fn exists(&mut self, key: &str, now_ms: u64) -> Result<bool> {
        Ok(self.live_record(key, now_ms)?.is_some())
    }

    pub(super) fn list(&mut self, prefix: &str, now_ms: u64) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.scan(prefix, None, |key, record| {
            if live(record, now_ms) {
                keys.push(key);
            }
            true
        })?;
        Ok(keys)
    }

    /// Every live `(key, value)` under `prefix` (the document layer's query).
    pub(super) fn pairs(&mut self, prefix: &str, now_ms: u64) -> Result<Vec<(String, Bytes)>> {
        let mut pairs = Vec::new();
        self.scan(prefix, None, |key, record| {
            if live(record, now_ms) {
                pairs.push((key, Bytes::copy_from_slice(&record[HEADER..])));
            }
            true
        })?;
        Ok(pairs)
    }

    pub(super) fn count(&mut self, prefix: &str, now_ms: u64) -> Result<usize> {
        let mut count = 0;
        self.scan(prefix, None, |_, record| {
            if live(record, now_ms) {
                count += 1;
            }
            true
        })?;
        Ok(count)
    }

    pub(super) fn get_many(&mut self, keys: &[String], now_ms: u64) -> Result<Vec<Option<Bytes>>> {
        keys.iter().map(|key| self.get(key, now_ms)).collect()
    }

    pub(super) fn set_many(
        &mut self,
        entries: Vec<(String, Vec<u8>)>,
        expires_at: u64,
    ) -> Result<()> {
        let mut pending = self.pending();
        let db = self.db()?;
        for (key, value) in entries {
            pending.set(db, key, &value, expires_at);
        }
        self.write(pending)
    }

    /// Deletes `keys` (distinct); returns how many were live.
    pub(super) fn delete_many(&mut self, keys: Vec<String>, now_ms: u64) -> Result<usize> {
        let mut pending = self.pending();
        let mut deleted = 0;
        let db = self.db()?;
        for key in keys {
            if pending.delete_live(db, key, now_ms) {
                deleted += 1;
            }
        }
        self.write(pending)?;
        Ok(deleted)
    }

    /// Writes `value` if the live value is `expected` (`None`: absent).
    pub(super) fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<&[u8]>,
        value: &[u8],
        expires_at: u64,
        now_ms: u64,
    ) -> Result<bool> {
        let current = self.live_record(&key, now_ms)?;
        if current.as_ref().map(|r| &r[HEADER..]) != expected {
            return Ok(false);
        }
        let mut pending = self.pending();
        pending.set(self.db()?, key, value, expires_at);
        self.write(pending)?;
        Ok(true)
    }

    /// Adds `delta` to the counter at `key`, keeping its deadline.
    pub(super) fn increment(&mut self, key: String, delta: i64, now_ms: u64) -> Result<i64> {
        let current = self.live_record(&key, now_ms)?;
        let next = next_counter(&key, current.as_ref().map(|r| &r[HEADER..]), delta)?;
        let expires_at = current
            .as_deref()
            .and_then(record_deadline)
            .unwrap_or(NEVER);
        let mut pending = self.pending();
        pending.set(self.db()?, key, next.to_string().as_bytes(), expires_at);
        self.write(pending)?;
        Ok(next)
    }

    /// Gives a live key the deadline `expires_at` and answers with its
    /// value; `NotFound` otherwise. (`expire` is this, value dropped.)
    pub(super) fn get_and_touch(
        &mut self,
        key: String,
        expires_at: u64,
        now_ms: u64,
    ) -> Result<Bytes> {
        let record = self.live_record(&key, now_ms)?.ok_or(Error::NotFound)?;
        let mut pending = self.pending();
        pending.set(self.db()?, key, &record[HEADER..], expires_at);
        self.write(pending)?;
        Ok(Bytes::copy_from_slice(&record[HEADER..]))
    }

    /// Up to `limit` live keys under `prefix` after `after`, in key order.
    pub(super) fn list_page(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.scan(prefix, after, |key, record| {
            if keys.len() < limit && live(record, now_ms) {
                keys.push(key);
            }
            keys.len() < limit
        })?;
        Ok(keys)
    }

    /// Deletes every key under `prefix`; returns how many were live.
    pub(super) fn delete_prefix(&mut self, prefix: &str, now_ms: u64) -> Result<usize> {
        let mut doomed = Vec::new();
        self.scan(prefix, None, |key, _| {
            doomed.push(key);
            true
        })?;
        self.delete_many(doomed, now_ms)
    }

    /// Calls `each` with every record whose key starts with `prefix` (and
    /// sorts after `after`), in key order, while it returns `true`.
    fn scan(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        mut each: impl FnMut(String, &[u8]) -> bool,
    ) -> Result<()> {
        let start = data_key(prefix);
        let (db, dir) = self.parts()?;
        let mut iter = db
            .new_iter()
            .map_err(|e| leveldb_error(dir, "reading", e))?;
        match after {
            Some(after) if after >= prefix => {
                iter.seek(&data_key(after));
                // `seek` lands on `after` itself when it exists; skip it.
                if iter
                    .current()
                    .is_some_and(|(k, _)| k[1..] == *after.as_bytes())
                {
                    iter.advance();
                }
            }
            _ => iter.seek(&start),
        }
        while let Some((key, record)) = iter.current() {
            if !key.starts_with(&start) {
                break;
            }
            // Keys were written from `&str`, so this only fails on a database
            // written by someone else; skip such a key rather than fail.
            if let Ok(key) = std::str::from_utf8(&key[1..]) {
                if !each(key.to_owned(), &record) {
                    break;
                }
            }
            if !iter.advance() {
                break;
            }
        }
        Ok(())
    }

    /// Deletes every key whose deadline has passed; returns how many.
    pub(super) fn sweep(&mut self, now_ms: u64) -> Result<usize> {
        let mut removed = 0;
        loop {
            let mut expired = Vec::new();
            let mut any_entry = false;
            let (db, dir) = self.parts()?;
            {
                let mut iter = db
                    .new_iter()
                    .map_err(|e| leveldb_error(dir, "sweeping", e))?;
                iter.seek(&[EXPIRY]);
                while let Some((index_key, _)) = iter.current() {
                    any_entry |= index_key.first() == Some(&EXPIRY);
                    if index_key.first() != Some(&EXPIRY) || expired.len() >= SWEEP_BATCH {
                        break;
                    }
                    let Some(deadline) = record_deadline(&index_key[1..]) else {
                        break;
                    };
                    if is_live(deadline, now_ms) {
                        break;
                    }
                    expired.push((
                        index_key.to_vec(),
                        deadline,
                        index_key[1 + HEADER..].to_vec(),
                    ));
                    if !iter.advance() {
                        break;
                    }
                }
            }
            if expired.is_empty() {
                if !any_entry {
                    // The index is empty: writes may skip looking for the
                    // entries of the records they replace.
                    self.expiring = false;
                }
                return Ok(removed);
            }
            let mut batch = WriteBatch::default();
            for (index_key, deadline, key) in &expired {
                batch.delete(index_key);
                let mut data = vec![DATA];
                data.extend_from_slice(key);
                // Delete the record only if it is the expired one: a newer
                // write replaced the index entry and must survive.
                if db.get(&data).and_then(|r| record_deadline(&r)) == Some(*deadline) {
                    batch.delete(&data);
                    removed += 1;
                }
            }
            db.write(batch, true)
                .map_err(|e| leveldb_error(dir, "sweeping", e))?;
        }
    }
}
