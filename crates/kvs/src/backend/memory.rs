//! The in-memory backend: [`MemoryStore`].
//!
//! # Design
//!
//! Entries live in 64 shards, picked by a hash of the key. Each shard is an
//! ordered map behind its own reader-writer lock:
//!
//! - `get`/`set`/`delete`/`exists` lock one shard, so tasks working on
//!   different keys rarely meet, and readers of one shard never block each
//!   other;
//! - `list`/`count` walk, in each shard, only the range of keys that start
//!   with the prefix: O(shards · log n + matches), not O(n);
//! - keys of up to 24 bytes are stored inline ([`CompactString`]), so a
//!   lookup compares keys without chasing a pointer per node;
//! - values are [`Bytes`]: `get` hands out a reference-counted view of the
//!   stored buffer, never a copy.
//!
//! Expiry follows mini-redis's design with its gaps closed: every read
//! checks the deadline (an expired entry is invisible at once), and each
//! shard also keeps its deadlines ordered in a set, so the background sweep
//! pops exactly the expired entries — its cost grows with the number of
//! expired keys, not with the number of keys. `set` and `delete` keep that
//! set in step with the entries (see [`Shard::expirations`]).
//!
//! The sweep runs on a small thread of its own, so the store works the same
//! inside or outside any tokio runtime, and `close` (or dropping the store)
//! stops and joins it.

use crate::config::MemoryConfig;
use crate::expiry::{deadline_ms, is_live, Clock, SystemClock, NEVER};
use crate::key::{normalize_namespace, validate_key, validate_prefix};
use crate::{Error, Result, Store};
use bytes::Bytes;
use compact_str::CompactString;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Number of shards; a power of two so that picking one is a shift.
const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();
/// Expired entries removed per write-lock hold, so a large sweep never
/// stalls a shard's writers for long.
const SWEEP_BATCH: usize = 256;

/// A store that keeps everything in this process's memory.
///
/// Each `MemoryStore` is private: two stores, even for the same namespace,
/// never share entries. Nothing survives the process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::{MemoryConfig, MemoryStore, Store};
///
/// let store = MemoryStore::new("cache", MemoryConfig::default())?;
/// store.set("answer", b"42", None).await?;
/// assert_eq!(&store.get("answer").await?[..], b"42");
/// # Ok(())
/// # }
/// ```
pub struct MemoryStore {
    inner: Arc<Inner>,
    /// `None` when the sweep is off or has been stopped.
    sweeper: Mutex<Option<Sweeper>>,
}

struct Inner {
    namespace: String,
    shards: Box<[RwLock<Shard>]>,
    hasher: foldhash::fast::FixedState,
    clock: Arc<dyn Clock>,
    /// Set once by `close`; every operation checks it first.
    closed: AtomicBool,
}

#[derive(Default)]
struct Shard {
    entries: BTreeMap<CompactString, Entry>,
    /// Invariant: holds `(d, k)` exactly when `entries[k].expires_at == d`
    /// and `d != NEVER`. [`Shard::insert`] and [`Shard::remove`] are the
    /// only writers of `entries` and keep this true; the sweep relies on it
    /// to find expired entries without scanning.
    expirations: BTreeSet<(u64, CompactString)>,
}

struct Entry {
    value: Bytes,
    /// Milliseconds since the epoch; [`NEVER`] for no TTL.
    expires_at: u64,
}

impl Shard {
    fn insert(&mut self, key: &str, entry: Entry) {
        let new_deadline = entry.expires_at;
        let old_deadline = match self.entries.get_mut(key) {
            Some(old) => std::mem::replace(old, entry).expires_at,
            None => {
                self.entries.insert(CompactString::from(key), entry);
                NEVER
            }
        };
        if old_deadline != new_deadline {
            if old_deadline != NEVER {
                self.expirations
                    .remove(&(old_deadline, CompactString::from(key)));
            }
            if new_deadline != NEVER {
                self.expirations
                    .insert((new_deadline, CompactString::from(key)));
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if entry.expires_at != NEVER {
            self.expirations
                .remove(&(entry.expires_at, CompactString::from(key)));
        }
        Some(entry)
    }

    fn has_expired(&self, now_ms: u64) -> bool {
        self.expirations
            .first()
            .is_some_and(|(deadline, _)| !is_live(*deadline, now_ms))
    }

    /// Removes up to `limit` expired entries, oldest deadline first.
    fn pop_expired(&mut self, now_ms: u64, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit && self.has_expired(now_ms) {
            if let Some((_, key)) = self.expirations.pop_first() {
                self.entries.remove(&key);
                removed += 1;
            }
        }
        removed
    }

    /// The live keys of this shard that start with `prefix`, in order.
    fn matching<'a>(
        &'a self,
        prefix: &'a str,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a CompactString> + 'a {
        self.entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
            .filter(move |(_, entry)| is_live(entry.expires_at, now_ms))
            .map(|(key, _)| key)
    }
}

impl MemoryStore {
    /// Opens an empty store for `namespace` (`""` means `"default"`).
    ///
    /// Starts the expiry sweep thread unless `config.cleanup_interval` is zero.
    pub fn new(namespace: &str, config: MemoryConfig) -> Result<MemoryStore> {
        MemoryStore::with_clock(namespace, config, Arc::new(SystemClock))
    }

    /// Like [`MemoryStore::new`], reading time from `clock` (a
    /// [`ManualClock`](crate::expiry::ManualClock) in tests).
    pub fn with_clock(
        namespace: &str,
        config: MemoryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<MemoryStore> {
        let inner = Arc::new(Inner {
            namespace: normalize_namespace(namespace)?,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x6b76_735f_6d65_6d31),
            clock,
            closed: AtomicBool::new(false),
        });
        let sweeper = if config.cleanup_interval.is_zero() {
            None
        } else {
            Some(Sweeper::start(
                Arc::downgrade(&inner),
                config.cleanup_interval,
            )?)
        };
        Ok(MemoryStore {
            inner,
            sweeper: Mutex::new(sweeper),
        })
    }

    /// The namespace this store was opened for.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Drops every expired entry now and returns how many there were.
    ///
    /// The background sweep calls this every `cleanup_interval`; it costs
    /// O(expired · log n). Expired entries are invisible whether or not it
    /// has run.
    pub fn purge_expired(&self) -> usize {
        self.inner.purge_expired()
    }

    /// Whether the background sweep thread is still running.
    #[doc(hidden)]
    pub fn sweeper_running(&self) -> bool {
        self.sweeper
            .lock()
            .as_ref()
            .is_some_and(|s| !s.thread.is_finished())
    }

    fn open_inner(&self) -> Result<&Inner> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(&self.inner)
    }

    fn stop_sweeper(&self) {
        if let Some(sweeper) = self.sweeper.lock().take() {
            sweeper.stop();
        }
    }
}

impl Inner {
    fn shard(&self, key: &str) -> &RwLock<Shard> {
        let hash = self.hasher.hash_one(key);
        // The high bits of foldhash are its best mixed.
        &self.shards[(hash >> (64 - SHARD_BITS)) as usize]
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn purge_expired(&self) -> usize {
        let now = self.now_ms();
        let mut removed = 0;
        for shard in self.shards.iter() {
            // A read lock is enough to see that nothing is due, which is the
            // common case; only shards with expired entries are write-locked.
            while shard.read().has_expired(now) {
                if self.closed.load(Ordering::Acquire) {
                    return removed;
                }
                removed += shard.write().pop_expired(now, SWEEP_BATCH);
            }
        }
        if removed > 0 {
            tracing::debug!(namespace = %self.namespace, removed, "memory store swept expired entries");
        }
        removed
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let shard = inner.shard(key).read();
        match shard.entries.get(key) {
            Some(e) if e.expires_at == NEVER || is_live(e.expires_at, inner.now_ms()) => {
                Ok(e.value.clone())
            }
            _ => Err(Error::NotFound),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let expires_at = match ttl {
            Some(ttl) if !ttl.is_zero() => deadline_ms(inner.now_ms(), Some(ttl)),
            _ => NEVER,
        };
        // Copy the value before taking the lock, to keep the lock short.
        let entry = Entry {
            value: Bytes::copy_from_slice(value),
            expires_at,
        };
        inner.shard(key).write().insert(key, entry);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let removed = inner.shard(key).write().remove(key);
        // Free the value after the lock is released.
        drop(removed);
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let shard = inner.shard(key).read();
        Ok(shard
            .entries
            .get(key)
            .is_some_and(|e| e.expires_at == NEVER || is_live(e.expires_at, inner.now_ms())))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let mut keys = Vec::new();
        for shard in inner.shards.iter() {
            keys.extend(shard.read().matching(prefix, now).map(|k| k.to_string()));
        }
        // Each shard is sorted; one sort merges them (and `str` order is byte order).
        keys.sort_unstable();
        Ok(keys)
    }

    async fn count(&self, prefix: &str) -> Result<usize> {
        validate_prefix(prefix)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        Ok(inner
            .shards
            .iter()
            .map(|shard| shard.read().matching(prefix, now).count())
            .sum())
    }

    async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.stop_sweeper();
        for shard in self.inner.shards.iter() {
            let old = std::mem::take(&mut *shard.write());
            drop(old);
        }
        Ok(())
    }
}

impl Drop for MemoryStore {
    fn drop(&mut self) {
        self.stop_sweeper();
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("namespace", &self.inner.namespace)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The background expiry sweep: a thread that calls `purge_expired` every
/// interval until stopped or until the store is gone.
struct Sweeper {
    signal: Arc<StopSignal>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Sweeper {
    fn start(store: Weak<Inner>, interval: Duration) -> Result<Sweeper> {
        let signal = Arc::new(StopSignal::default());
        let thread_signal = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("kvs-memory-sweep".into())
            // The loop needs little stack; keep many stores cheap.
            .stack_size(128 * 1024)
            .spawn(move || sweep_loop(&store, interval, &thread_signal))
            .map_err(|e| Error::backend("memory", "starting the expiry sweep thread", e))?;
        Ok(Sweeper { signal, thread })
    }

    /// Stops the thread and waits for it; it is at most finishing one batch.
    fn stop(self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
        if self.thread.join().is_err() {
            tracing::error!("kvs memory sweep thread panicked");
        }
    }
}

fn sweep_loop(store: &Weak<Inner>, interval: Duration, signal: &StopSignal) {
    loop {
        {
            let mut stopped = signal.stopped.lock();
            if !*stopped {
                signal
                    .wake
                    .wait_while_for(&mut stopped, |stopped| !*stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        // Holding only a `Weak` lets the store be dropped while we sleep.
        match store.upgrade() {
            Some(inner) => {
                inner.purge_expired();
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::ManualClock;

    fn store_with_clock(interval: Duration) -> (MemoryStore, ManualClock) {
        let clock = ManualClock::new(1_000_000);
        let config = MemoryConfig {
            cleanup_interval: interval,
        };
        let store = MemoryStore::with_clock("t", config, Arc::new(clock.clone())).unwrap();
        (store, clock)
    }

    fn expirations_len(store: &MemoryStore) -> usize {
        store
            .inner
            .shards
            .iter()
            .map(|s| s.read().expirations.len())
            .sum()
    }

    fn entries_len(store: &MemoryStore) -> usize {
        store
            .inner
            .shards
            .iter()
            .map(|s| s.read().entries.len())
            .sum()
    }

    #[tokio::test]
    async fn sweep_removes_only_expired_entries() {
        let (store, clock) = store_with_clock(Duration::ZERO);
        for i in 0..100 {
            let ttl = (i % 2 == 0).then(|| Duration::from_secs(1));
            store.set(&format!("k{i}"), b"v", ttl).await.unwrap();
        }
        assert_eq!(store.purge_expired(), 0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.purge_expired(), 50);
        assert_eq!(entries_len(&store), 50);
        assert_eq!(expirations_len(&store), 0);
    }

    #[tokio::test]
    async fn overwrite_and_delete_keep_the_expiry_index_in_step() {
        let (store, clock) = store_with_clock(Duration::ZERO);
        store
            .set("a", b"1", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        store
            .set("a", b"2", Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(expirations_len(&store), 1);
        store.set("a", b"3", None).await.unwrap();
        assert_eq!(expirations_len(&store), 0);
        store
            .set("b", b"1", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        store.delete("b").await.unwrap();
        assert_eq!(expirations_len(&store), 0);
        // A stale index entry would make the sweep delete the new value.
        store
            .set("c", b"old", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        store
            .set("c", b"new", Some(Duration::from_secs(100)))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.purge_expired(), 0);
        assert_eq!(&store.get("c").await.unwrap()[..], b"new");
    }

    #[tokio::test]
    async fn get_shares_the_stored_buffer() {
        let (store, _) = store_with_clock(Duration::ZERO);
        store.set("k", &[7; 4096], None).await.unwrap();
        let a = store.get("k").await.unwrap();
        let b = store.get("k").await.unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "get must not copy the value");
    }

    #[tokio::test]
    async fn background_sweep_runs_and_stops_on_close() {
        let (store, clock) = store_with_clock(Duration::from_millis(10));
        assert!(store.sweeper_running());
        store
            .set("k", b"v", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));
        // Wait (bounded) for the sweep thread to reclaim the entry.
        for _ in 0..500 {
            if entries_len(&store) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(entries_len(&store), 0, "the sweep never ran");
        store.close().await.unwrap();
        assert!(!store.sweeper_running());
        assert!(
            store.sweeper.lock().is_none(),
            "close must join the sweep thread"
        );
    }

    #[test]
    fn sweep_thread_ends_when_the_store_is_dropped() {
        let (store, _) = store_with_clock(Duration::from_secs(3600));
        let weak = Arc::downgrade(&store.inner);
        drop(store);
        assert!(
            weak.upgrade().is_none(),
            "the sweep thread must not keep the store alive"
        );
    }

    #[test]
    fn no_sweep_thread_when_interval_is_zero() {
        let (store, _) = store_with_clock(Duration::ZERO);
        assert!(!store.sweeper_running());
    }
}
