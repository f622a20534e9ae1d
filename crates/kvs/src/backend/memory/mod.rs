//! The in-memory backend: [`MemoryStore`].
//!
//! # Design
//!
//! Entries live in 64 shards, picked by a hash of the key, each behind its
//! own reader-writer lock, so tasks working on different keys rarely meet
//! and readers of one shard never block each other. Inside a shard:
//!
//! - entries sit in a slab of slots, found by key through a hash table of
//!   slot numbers: `get`/`set`/`delete`/`exists` cost one hash lookup;
//! - an ordered map from key to slot answers `list`/`count`: each shard
//!   walks only the keys that start with the prefix, so a query costs
//!   O(shards · log n + matches), not O(n);
//! - keys of up to 24 bytes are stored inline ([`CompactString`]);
//! - values are [`Bytes`]: `get` hands out a reference-counted view of the
//!   stored buffer, never a copy, and `set` swaps in a new buffer, so a
//!   value handed out earlier never changes under its reader.
//!
//! Every operation completes without waiting, so the store answers with
//! [`StoreFuture::ready`]: no allocation per call.
//!
//! The slab costs one more memory access per lookup than storing entries
//! in the hash table itself, and saves about a sixth of the memory: a hash
//! table is between 44% and 87% full, and its empty buckets then hold four
//! bytes instead of a whole entry.
//!
//! Expiry follows mini-redis's design with its gaps closed: every read
//! checks the deadline (an expired entry is invisible at once), and each
//! shard also keeps its deadlines ordered in a set, so the background sweep
//! pops exactly the expired entries — its cost grows with the number of
//! expired keys, not with the number of keys. `set` and `delete` keep that
//! set in step with the entries (see [`Shard`]'s invariants).
//!
//! The sweep runs on a small thread of its own, so the store works the same
//! inside or outside any tokio runtime, and `close` (or dropping the store)
//! stops and joins it.
//!
//! # Files
//!
//! `shard.rs` (a shard and its invariants), `sweeper.rs` (the sweep
//! thread), `tests.rs` (the tests that need the internals).

mod bounds;
mod shard;
mod sweeper;
#[cfg(test)]
mod tests;

use crate::config::MemoryConfig;
use crate::deadline::{check_ttl, deadline_ms, remaining, NEVER};
use crate::document::{DocSpace, Documents};
use crate::expiry::{Clock, SystemClock};
use crate::generic::{next_counter, optional, validate_all};
use crate::key::{normalize_namespace, validate_key, validate_prefix};
use crate::DocumentStore;
use crate::{Error, Result, Store, StoreFuture};
use bounds::{cost, Bounds};
use bytes::Bytes;
use compact_str::CompactString;
use parking_lot::{Mutex, RwLock};
use shard::{KeyHasher, Shard, SHARDS};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sweeper::Sweeper;

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
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
    /// Set once by `close`; every operation checks it first.
    closed: AtomicBool,
    /// `max_entries`/`max_bytes`, if set (see `bounds.rs`).
    bounds: Option<Arc<Bounds>>,
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
        let inner = Inner::new(normalize_namespace(namespace)?, &config, clock);
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

    /// [`MemoryStore::new`] in the naming scheme every backend shares
    /// (`kvs::open` calls this).
    pub async fn open(namespace: &str, config: MemoryConfig) -> Result<MemoryStore> {
        MemoryStore::new(namespace, config)
    }

    /// [`MemoryStore::with_clock`] in the naming scheme every backend shares.
    pub async fn open_with_clock(
        namespace: &str,
        config: MemoryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<MemoryStore> {
        MemoryStore::with_clock(namespace, config, clock)
    }

    /// A memory store for `namespace` with its document layer: plain keys
    /// and documents in two private maps.
    pub async fn open_documents(
        namespace: &str,
        config: MemoryConfig,
    ) -> Result<Arc<dyn DocumentStore>> {
        MemoryStore::open_documents_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`MemoryStore::open_documents`], reading time from `clock`.
    pub async fn open_documents_with_clock(
        namespace: &str,
        config: MemoryConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn DocumentStore>> {
        let keys = MemoryStore::with_clock(namespace, config.clone(), Arc::clone(&clock))?;
        // Documents never expire, so their map needs no sweep thread.
        // Nor a bound: documents are data, not a cache.
        let docs_config = MemoryConfig {
            cleanup_interval: Duration::ZERO,
            ..MemoryConfig::default()
        };
        let docs = MemoryStore::with_clock(namespace, docs_config, Arc::clone(&clock))?;
        Ok(Arc::new(Documents::new(keys, docs, clock)))
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

    /// How many entries the bound (`max_entries`, `max_bytes`) has evicted
    /// so far; 0 for an unbounded store. Also counted in the metric
    /// `kvs_evictions_total{backend="memory", namespace}`.
    pub fn evictions(&self) -> u64 {
        self.inner.bounds.as_ref().map_or(0, |b| b.evictions())
    }

    /// The entries and bytes (keys and values) counted against the bound,
    /// `None` for an unbounded store. Never above `max_entries` and
    /// `max_bytes`.
    pub fn usage(&self) -> Option<(usize, usize)> {
        self.inner.bounds.as_ref().map(|b| b.usage())
    }

    /// Whether the background sweep thread is still running.
    #[doc(hidden)]
    pub fn sweeper_running(&self) -> bool {
        self.sweeper
            .lock()
            .as_ref()
            .is_some_and(Sweeper::is_running)
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

impl MemoryStore {
    /// A store that cannot fail to open, because it starts no sweep
    /// thread and its namespace is the crate's own: the local tier of a
    /// [`TieredStore`](crate::cache::TieredStore). Expired entries are
    /// invisible at once and are the first a bound evicts.
    pub(crate) fn unswept(namespace: &str, config: &MemoryConfig) -> MemoryStore {
        MemoryStore {
            inner: Inner::new(namespace.to_owned(), config, Arc::new(SystemClock)),
            sweeper: Mutex::new(None),
        }
    }
}

impl Inner {
    fn new(namespace: String, config: &MemoryConfig, clock: Arc<dyn Clock>) -> Arc<Inner> {
        let bounds = (config.max_entries.is_some() || config.max_bytes.is_some()).then(|| {
            Arc::new(Bounds::new(
                config.max_entries,
                config.max_bytes,
                &namespace,
            ))
        });
        Arc::new(Inner {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Shard::with_bounds(bounds.clone())))
                .collect(),
            namespace,
            bounds,
            hasher: KeyHasher(foldhash::fast::FixedState::with_seed(0x6b76_735f_6d65_6d31)),
            clock,
            closed: AtomicBool::new(false),
        })
    }

    /// The key's hash and the shard that holds it.
    fn shard(&self, key: &str) -> (u64, &RwLock<Shard>) {
        let hash = self.hasher.hash(key);
        (hash, &self.shards[KeyHasher::shard(hash)])
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
                removed += shard.write().pop_expired(&self.hasher, now, SWEEP_BATCH);
            }
        }
        if removed > 0 {
            tracing::debug!(namespace = %self.namespace, removed, "memory store swept expired entries");
        }
        removed
    }

    /// Counts an entry of `bytes` against the bound, evicting entries
    /// (from `home` first, then the other shards) until it fits; a no-op
    /// without a bound. Takes no lock the caller holds: call it before
    /// locking the shard the entry goes to.
    fn reserve(&self, key: &str, bytes: usize, home: u64) -> Result<()> {
        let Some(bounds) = &self.bounds else {
            return Ok(());
        };
        if bytes > bounds.max_bytes {
            return Err(Error::ValueTooLarge {
                backend: "memory",
                key: key.to_owned(),
                size: bytes,
                limit: bounds.max_bytes,
            });
        }
        let home = KeyHasher::shard(home);
        let mut idle_rounds = 0u32;
        while !bounds.try_reserve(bytes) {
            let now = self.now_ms();
            // One turn of each shard's hand, the home shard's first, and
            // a second if the first found every entry read (it cleared
            // their marks): the hands move on together like one CLOCK.
            let evicted = (0..2 * SHARDS).find_map(|k| {
                let shard = &self.shards[(home + k) % SHARDS];
                shard.write().evict_one(&self.hasher, now)
            });
            match evicted {
                Some(slot) => {
                    bounds.count_eviction();
                    drop(slot);
                }
                // Everything counted is a reservation of a write in
                // flight: it lands in a moment, and is then evictable.
                None => {
                    idle_rounds += 1;
                    if idle_rounds > 100_000 {
                        return Err(Error::backend(
                            "memory",
                            format!("making room for {}", crate::error::Shortened(key)),
                            "every entry is held by a write in flight",
                        ));
                    }
                    std::thread::yield_now();
                }
            }
        }
        Ok(())
    }

    /// Gives back a reservation (or the part of one) not used.
    fn unreserve(&self, entries: usize, bytes: usize) {
        if let Some(bounds) = &self.bounds {
            bounds.release(entries, bytes);
        }
    }

    fn matching_count(&self, prefix: &str) -> usize {
        let now = self.now_ms();
        self.shards
            .iter()
            .map(|shard| shard.read().matching(prefix, now).count())
            .sum()
    }
}

/// The operations, without waiting: the [`Store`] impl wraps each result
/// in [`StoreFuture::ready`].
impl MemoryStore {
    pub(crate) fn get_now(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let (hash, shard) = inner.shard(key);
        let shard = shard.read();
        match shard.get(hash, key) {
            Some(slot) if slot.is_live(|| inner.now_ms()) => {
                if inner.bounds.is_some() {
                    slot.mark_read();
                }
                Ok(slot.value.clone())
            }
            _ => Err(Error::NotFound),
        }
    }

    pub(crate) fn set_now(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        validate_key(key)?;
        check_ttl(key, ttl)?;
        let inner = self.open_inner()?;
        let expires_at = match ttl {
            Some(ttl) if !ttl.is_zero() => deadline_ms(inner.now_ms(), Some(ttl)),
            _ => NEVER,
        };
        // Copy the value before taking the lock and free the old one after
        // releasing it, so the lock is held only to swap them.
        let value = Bytes::copy_from_slice(value);
        let (hash, shard) = inner.shard(key);
        inner.reserve(key, cost(key.len(), value.len()), hash)?;
        let old = shard
            .write()
            .insert(&inner.hasher, hash, key, value, expires_at);
        drop(old);
        Ok(())
    }

    pub(crate) fn delete_now(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let (hash, shard) = inner.shard(key);
        let removed = shard.write().remove(hash, key);
        drop(removed);
        Ok(())
    }

    pub(crate) fn exists_now(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let (hash, shard) = inner.shard(key);
        let shard = shard.read();
        Ok(shard
            .get(hash, key)
            .is_some_and(|slot| slot.is_live(|| inner.now_ms())))
    }

    fn ttl_now(&self, key: &str) -> Result<Option<Duration>> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let (hash, shard) = inner.shard(key);
        let shard = shard.read();
        let now = inner.now_ms();
        match shard.get(hash, key) {
            Some(slot) if slot.is_live(|| now) => Ok(remaining(slot.expires_at, now)),
            _ => Err(Error::NotFound),
        }
    }

    fn list_now(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let mut keys = Vec::new();
        for shard in inner.shards.iter() {
            keys.extend(shard.read().matching(prefix, now).map(|k| k.to_string()));
        }
        // Each shard is sorted; one sort merges them (`str` order is byte order).
        keys.sort_unstable();
        Ok(keys)
    }

    /// Every live `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_now(&self, prefix: &str) -> Result<Vec<(String, Bytes)>> {
        validate_prefix(prefix)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let mut pairs = Vec::new();
        for shard in inner.shards.iter() {
            let shard = shard.read();
            for key in shard.matching(prefix, now) {
                let hash = inner.hasher.hash(key);
                if let Some(slot) = shard.get(hash, key) {
                    pairs.push((key.to_string(), slot.value.clone()));
                }
            }
        }
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(pairs)
    }

    fn set_if_absent_now(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        self.compare_and_swap_now(key, None, value, ttl)
    }

    fn compare_and_swap_now(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        validate_key(key)?;
        check_ttl(key, ttl)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let value = Bytes::copy_from_slice(new);
        let (hash, shard) = inner.shard(key);
        let reserved = cost(key.len(), value.len());
        inner.reserve(key, reserved, hash)?;
        let mut shard = shard.write();
        let current = shard.live(hash, key, now).map(|(_, slot)| &slot.value[..]);
        if current != expected {
            drop(shard);
            inner.unreserve(1, reserved);
            return Ok(false);
        }
        let old = shard.insert(&inner.hasher, hash, key, value, deadline_ms(now, ttl));
        drop(shard);
        drop(old);
        Ok(true)
    }

    fn increment_now(&self, key: &str, delta: i64) -> Result<i64> {
        validate_key(key)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let (hash, shard) = inner.shard(key);
        // The new value is not known before the lock: reserve the longest
        // a counter can be (`-9223372036854775808`), give back the rest.
        let reserved = cost(key.len(), 20);
        inner.reserve(key, reserved, hash)?;
        let mut shard = shard.write();
        let current = shard.live(hash, key, now).map(|(_, slot)| slot);
        let next = match next_counter(key, current.map(|slot| &slot.value[..]), delta) {
            Ok(next) => next,
            Err(e) => {
                drop(shard);
                inner.unreserve(1, reserved);
                return Err(e);
            }
        };
        let expires_at = current.map_or(NEVER, |slot| slot.expires_at);
        let value = Bytes::from(next.to_string());
        let unused = reserved - cost(key.len(), value.len());
        let old = shard.insert(&inner.hasher, hash, key, value, expires_at);
        drop(shard);
        inner.unreserve(0, unused);
        drop(old);
        Ok(next)
    }

    fn expire_now(&self, key: &str, ttl: Duration) -> Result<()> {
        self.get_and_touch_now(key, ttl).map(drop)
    }

    /// `expire` returning the value: both are one write-lock hold.
    fn get_and_touch_now(&self, key: &str, ttl: Duration) -> Result<Bytes> {
        validate_key(key)?;
        check_ttl(key, Some(ttl))?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let (hash, shard) = inner.shard(key);
        let mut shard = shard.write();
        let (i, slot) = shard.live(hash, key, now).ok_or(Error::NotFound)?;
        slot.mark_read();
        let value = slot.value.clone();
        shard.set_deadline(i, deadline_ms(now, Some(ttl)));
        Ok(value)
    }

    fn list_page_now(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        validate_prefix(prefix)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        // Merge the shards' sorted runs, taking only `limit` keys: the cost
        // is O(shards · log n + limit · log shards), whatever the key count.
        let guards: Vec<_> = inner.shards.iter().map(|shard| shard.read()).collect();
        let mut runs: Vec<_> = guards
            .iter()
            .map(|shard| shard.page(prefix, start_after, now).peekable())
            .collect();
        let mut heads: BinaryHeap<Reverse<(&CompactString, usize)>> = runs
            .iter_mut()
            .enumerate()
            .filter_map(|(i, run)| run.next().map(|key| Reverse((key, i))))
            .collect();
        let mut keys = Vec::with_capacity(limit.min(1024));
        while keys.len() < limit {
            let Some(Reverse((key, i))) = heads.pop() else {
                break;
            };
            keys.push(key.to_string());
            if let Some(next) = runs[i].next() {
                heads.push(Reverse((next, i)));
            }
        }
        let next = (limit > 0 && keys.len() == limit).then(|| keys[limit - 1].clone());
        Ok((keys, next))
    }

    pub(crate) fn get_many_now(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        validate_all(keys.iter().copied())?;
        // Closed refuses even an empty batch, as on every backend.
        self.open_inner()?;
        keys.iter().map(|key| optional(self.get_now(key))).collect()
    }

    fn set_many_now(&self, entries: &[(&str, &[u8])], ttl: Option<Duration>) -> Result<()> {
        validate_all(entries.iter().map(|(key, _)| *key))?;
        if let Some((key, _)) = entries.first() {
            check_ttl(key, ttl)?;
        }
        self.open_inner()?;
        entries
            .iter()
            .try_for_each(|(key, value)| self.set_now(key, value, ttl))
    }

    fn delete_many_now(&self, keys: &[&str]) -> Result<usize> {
        validate_all(keys.iter().copied())?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let mut deleted = 0;
        for key in keys {
            let (hash, shard) = inner.shard(key);
            let removed = shard.write().remove(hash, key);
            if removed.is_some_and(|slot| slot.is_live(|| now)) {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    pub(crate) fn delete_prefix_now(&self, prefix: &str) -> Result<usize> {
        validate_prefix(prefix)?;
        let inner = self.open_inner()?;
        let now = inner.now_ms();
        let mut deleted = 0;
        for shard in inner.shards.iter() {
            let mut shard = shard.write();
            let doomed: Vec<CompactString> = shard
                .order
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(key, _)| key.clone())
                .collect();
            for key in doomed {
                let hash = inner.hasher.hash(&key);
                if shard
                    .remove(hash, &key)
                    .is_some_and(|slot| slot.is_live(|| now))
                {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }

    fn count_now(&self, prefix: &str) -> Result<usize> {
        validate_prefix(prefix)?;
        Ok(self.open_inner()?.matching_count(prefix))
    }

    pub(crate) fn close_now(&self) -> Result<()> {
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

impl Store for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        StoreFuture::ready(self.get_now(key))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        StoreFuture::ready(self.set_now(key, value, ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        StoreFuture::ready(self.delete_now(key))
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        StoreFuture::ready(self.exists_now(key))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        StoreFuture::ready(self.list_now(prefix))
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        StoreFuture::ready(self.count_now(prefix))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        StoreFuture::ready(self.close_now())
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        StoreFuture::ready(self.ttl_now(key))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        StoreFuture::ready(self.get_many_now(keys))
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        StoreFuture::ready(self.set_many_now(entries, ttl))
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        StoreFuture::ready(self.delete_many_now(keys))
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::ready(self.set_if_absent_now(key, value, ttl))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        StoreFuture::ready(self.compare_and_swap_now(key, expected, new, ttl))
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        StoreFuture::ready(self.increment_now(key, delta))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        StoreFuture::ready(self.expire_now(key, ttl))
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        StoreFuture::ready(self.get_and_touch_now(key, ttl))
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        StoreFuture::ready(self.list_page_now(prefix, start_after, limit))
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        StoreFuture::ready(self.delete_prefix_now(prefix))
    }
}

/// The generic document layer keeps documents in a second, private
/// `MemoryStore`.
impl DocSpace for MemoryStore {
    fn scan_values<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Bytes)>> {
        StoreFuture::ready(self.scan_now(prefix))
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
