//! [`Tiered`]: a bounded memory tier in front of any store, kept coherent
//! between instances by an invalidation bus.
//!
//! # What each call does
//!
//! - `get` answers from the local tier (L1) when it can; otherwise it
//!   reads the store (L2), then its remaining TTL, and fills L1 for no
//!   longer than that, and never longer than the layer's `ttl`.
//! - Every write (`set`, `delete`, batches, atomics, `expire`,
//!   `get_and_touch`, `delete_prefix`, `clear`) goes to L2 first, then
//!   drops what it changed from L1 and, with a bus, tells the other
//!   instances to drop it too. L1 never holds a value L2 did not have.
//! - `exists` answers `true` from L1; listing, counting, paging, `ttl`
//!   and `get_many` misses read L2 (a batch does not fill L1).
//!
//! # Staleness
//!
//! - **With a bus** (`bus: redis://…`): another instance's write reaches
//!   this one's L1 as a pub/sub message, in about a round trip (the tests
//!   require under 100 ms). While the bus is not connected (at start, or
//!   after Redis restarts) L1 is bypassed, and on every (re)connection it
//!   is emptied, since messages sent meanwhile are lost.
//! - **Without a bus**: nothing tells this instance about other
//!   instances' writes. Its L1 can serve a value for up to `ttl` after
//!   another instance changed it. Use a short `ttl`, or a bus.
//!
//! A read that races a write never leaves the old value in L1: each
//! invalidation bumps an epoch (one of 64, by key hash) before dropping
//! the key, and a read that filled L1 checks the epoch it started with
//! and drops its fill if it moved.

use super::bus::{Bus, Invalidation};
use crate::forward::{forward_documents, forward_store};
use crate::{Bytes, DocumentStore, Error, MemoryConfig, MemoryStore, Result, Store, StoreFuture};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The layer: a local, bounded memory tier in front of the store.
///
/// In a configuration file:
/// `layers: [{ tiered: { max_entries: 10000, ttl: 30s, bus: "redis://127.0.0.1:6379" } }]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::time::Duration;
/// use kvs::cache::Tiered;
/// use kvs::layer::LayerExt;
///
/// let shared = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
/// let store = shared.clone().layer(Tiered::new(10_000).ttl(Duration::from_secs(30)));
/// store.set("user:42", b"ada", None).await?;
/// assert_eq!(&store.get("user:42").await?[..], b"ada"); // from L2, now in L1
/// assert_eq!(&store.get("user:42").await?[..], b"ada"); // from L1
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiered {
    max_entries: Option<usize>,
    max_bytes: Option<usize>,
    ttl: Duration,
    bus: Option<(BusUrl, String)>,
}

/// A bus URL, which may hold a password: `Debug` shows only its host.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct BusUrl(pub String);

impl std::fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(url) => write!(
                f,
                "\"{}://{}:{}/…\"",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().unwrap_or(6379)
            ),
            Err(_) => f.write_str("\"<not a URL>\""),
        }
    }
}

/// The longest an entry stays in L1 unless set otherwise.
pub const DEFAULT_TIER_TTL: Duration = Duration::from_secs(60);

impl Tiered {
    /// A local tier of at most `max_entries` entries, each kept at most
    /// [`DEFAULT_TIER_TTL`], without a bus.
    pub fn new(max_entries: usize) -> Tiered {
        Tiered {
            max_entries: Some(max_entries),
            max_bytes: None,
            ttl: DEFAULT_TIER_TTL,
            bus: None,
        }
    }

    /// A local tier of at most `max_entries` entries and `max_bytes` bytes
    /// of keys and values (`None`: no such bound).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if both are `None` (an unbounded local
    /// tier grows without end) or either is 0.
    pub fn bounded(max_entries: Option<usize>, max_bytes: Option<usize>) -> Result<Tiered> {
        if max_entries.is_none() && max_bytes.is_none() {
            return Err(Error::config(
                "tiered: give `max_entries`, `max_bytes` or both",
            ));
        }
        if max_entries == Some(0) || max_bytes == Some(0) {
            return Err(Error::config(
                "tiered: a bound of 0 holds nothing; leave the tier out",
            ));
        }
        Ok(Tiered {
            max_entries,
            max_bytes,
            ttl: DEFAULT_TIER_TTL,
            bus: None,
        })
    }

    /// Bounds the local tier to `max_bytes` bytes of keys and values too.
    pub fn max_bytes(mut self, max_bytes: usize) -> Tiered {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// The longest an entry stays in the local tier (it never outlives
    /// its TTL in the store either). Zero means the default.
    pub fn ttl(mut self, ttl: Duration) -> Tiered {
        self.ttl = if ttl.is_zero() { DEFAULT_TIER_TTL } else { ttl };
        self
    }

    /// Keeps instances coherent through Redis pub/sub at `redis_url`, on
    /// the channel of `namespace` (the store's namespace: instances of
    /// one namespace share a channel).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `redis_url` is not a Redis URL, and
    /// [`Error::Unsupported`] without the `redis` feature.
    pub fn bus(mut self, redis_url: &str, namespace: &str) -> Result<Tiered> {
        if !cfg!(feature = "redis") {
            return Err(Error::unsupported(
                "tiered: the invalidation bus needs kvs's `redis` cargo feature",
            ));
        }
        match url::Url::parse(redis_url) {
            Ok(url) if matches!(url.scheme(), "redis" | "rediss") && url.has_host() => {}
            _ => {
                return Err(Error::config(
                    "tiered: `bus` must be a redis:// or rediss:// URL with a host",
                ))
            }
        }
        self.bus = Some((BusUrl(redis_url.to_owned()), namespace.to_owned()));
        Ok(self)
    }
}

crate::layer::layer_wraps_with!(Tiered, |layer, inner| TieredStore::new(inner, layer));

/// A store behind the [`Tiered`] layer.
pub struct TieredStore<S> {
    l2: S,
    local: Arc<Local>,
    /// The bus's URL and namespace, when there is one.
    bus_config: Option<(BusUrl, String)>,
    /// Started on the first call (it needs the runtime the call runs in);
    /// `None` inside if it could not start, and then L1 is never used.
    bus: OnceLock<Option<Bus>>,
}

impl<S> std::fmt::Debug for TieredStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("ttl", &self.local.ttl)
            .field("bus", &self.bus_config.as_ref().map(|(url, _)| url))
            .finish_non_exhaustive()
    }
}

/// The local tier and its invalidation epochs; shared with the bus.
struct Local {
    l1: MemoryStore,
    ttl: Duration,
    epochs: Box<[AtomicU64]>,
    hasher: foldhash::fast::FixedState,
}

const EPOCHS: usize = 64;

impl Local {
    fn epoch(&self, key: &str) -> &AtomicU64 {
        let slot = self.hasher.hash_one(key) as usize % EPOCHS;
        &self.epochs[slot]
    }

    fn drop_key(&self, key: &str) {
        self.epoch(key).fetch_add(1, Ordering::AcqRel);
        let _ = self.l1.delete_now(key);
    }

    fn drop_prefix(&self, prefix: &str) {
        for epoch in self.epochs.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        let _ = self.l1.delete_prefix_now(prefix);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // the bus calls it
    fn apply(&self, what: Invalidation) {
        match what {
            Invalidation::Key(key) => self.drop_key(&key),
            Invalidation::Prefix(prefix) => self.drop_prefix(&prefix),
            Invalidation::All => self.drop_prefix(""),
        }
    }
}

impl<S: Store> TieredStore<S> {
    /// `l2` with the local tier `layer` describes in front of it.
    pub fn new(l2: S, layer: &Tiered) -> TieredStore<S> {
        let config = MemoryConfig {
            cleanup_interval: Duration::ZERO,
            max_entries: layer.max_entries,
            max_bytes: layer.max_bytes,
        };
        TieredStore {
            l2,
            local: Arc::new(Local {
                l1: MemoryStore::unswept("tiered-l1", &config),
                ttl: layer.ttl,
                epochs: (0..EPOCHS).map(|_| AtomicU64::new(0)).collect(),
                hasher: foldhash::fast::FixedState::with_seed(0x7469_6572_6564),
            }),
            bus_config: layer.bus.clone(),
            bus: OnceLock::new(),
        }
    }

    /// The local tier, when it can be trusted: always without a bus, and
    /// with one only while it is connected.
    fn local(&self) -> Option<&Local> {
        if self.bus_config.is_none() {
            return Some(&self.local);
        }
        self.bus().filter(|bus| bus.is_live()).map(|_| &*self.local)
    }

    /// The bus, started by the first call that needs it (reads and
    /// writes alike: a writer that never reads must still publish).
    fn bus(&self) -> Option<&Bus> {
        let (url, namespace) = self.bus_config.as_ref()?;
        self.bus
            .get_or_init(|| self.start_bus(&url.0, namespace))
            .as_ref()
    }

    #[cfg(feature = "redis")]
    fn start_bus(&self, url: &str, namespace: &str) -> Option<Bus> {
        let local = Arc::clone(&self.local);
        match Bus::start(url, namespace, Arc::new(move |what| local.apply(what))) {
            Ok(bus) => Some(bus),
            Err(e) => {
                tracing::warn!(error = %e, "kvs tiered store: no invalidation bus; the local tier is off");
                None
            }
        }
    }

    #[cfg(not(feature = "redis"))]
    fn start_bus(&self, _url: &str, _namespace: &str) -> Option<Bus> {
        None
    }

    /// After a change to what `what` names, whether or not the write
    /// succeeded (a failed write may still have landed): dropped here and,
    /// with a bus, in the other instances.
    fn changed(&self, what: Invalidation) {
        if let Some(bus) = self.bus() {
            bus.send(&what);
        }
        self.local.apply(what);
    }

    /// Reads `key` from L2 and fills L1 for no longer than L2 keeps it.
    async fn read_through(&self, key: &str) -> Result<Bytes> {
        let Some(local) = self.local() else {
            return self.l2.get(key).await;
        };
        let epoch = local.epoch(key).load(Ordering::Acquire);
        let value = self.l2.get(key).await?;
        let left = match self.l2.ttl(key).await {
            Ok(None) => local.ttl,
            Ok(Some(left)) => left.min(local.ttl),
            // Gone since the read: answer what was read, keep nothing.
            Err(_) => return Ok(value),
        };
        if !left.is_zero() && local.l1.set_now(key, &value, Some(left)).is_ok() {
            // An invalidation since the read started: the fill may be old.
            if local.epoch(key).load(Ordering::Acquire) != epoch {
                let _ = local.l1.delete_now(key);
            }
        }
        Ok(value)
    }

    /// `l2`'s write `op`, then each of `changes` dropped here and on the
    /// bus.
    fn write_then<'a, T: Send + 'a>(
        &'a self,
        op: StoreFuture<'a, T>,
        changes: impl Iterator<Item = Invalidation> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        StoreFuture::boxed(async move {
            let out = op.await;
            changes.for_each(|what| self.changed(what));
            out
        })
    }

    fn write_key<'a, T: Send + 'a>(
        &'a self,
        key: &'a str,
        op: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        self.write_then(
            op,
            std::iter::once_with(|| Invalidation::Key(key.to_owned())),
        )
    }

    fn write_keys<'a, T: Send + 'a>(
        &'a self,
        keys: impl Iterator<Item = &'a str> + Send + 'a,
        op: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        self.write_then(op, keys.map(|key| Invalidation::Key(key.to_owned())))
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: Store> Store for TieredStore<S> {
    forward_store!(|this| this.l2; list, count, ttl, list_page, scan, entries_page);

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        // A hit answers at once, without a boxed future.
        if let Some(local) = self.local() {
            if let Ok(value) = local.l1.get_now(key) {
                return StoreFuture::ready(Ok(value));
            }
        }
        StoreFuture::boxed(self.read_through(key))
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        if let Some(local) = self.local() {
            if local.l1.exists_now(key).unwrap_or(false) {
                return StoreFuture::ready(Ok(true));
            }
        }
        self.l2.exists(key)
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        let Some(local) = self.local() else {
            return self.l2.get_many(keys);
        };
        let Ok(mut found) = local.l1.get_many_now(keys) else {
            return self.l2.get_many(keys);
        };
        if found.iter().all(Option::is_some) {
            return StoreFuture::ready(Ok(found));
        }
        StoreFuture::boxed(async move {
            let missing: Vec<&str> = keys
                .iter()
                .zip(&found)
                .filter(|(_, value)| value.is_none())
                .map(|(key, _)| *key)
                .collect();
            let mut fetched = self.l2.get_many(&missing).await?.into_iter();
            for slot in found.iter_mut().filter(|value| value.is_none()) {
                *slot = fetched.next().flatten();
            }
            Ok(found)
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.write_key(key, self.l2.set(key, value, ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.write_key(key, self.l2.delete(key))
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let keys = entries.iter().map(|(key, _)| *key);
        self.write_keys(keys, self.l2.set_many(entries, ttl))
    }

    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        self.write_keys(keys.iter().copied(), self.l2.delete_many(keys))
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.write_key(key, self.l2.set_if_absent(key, value, ttl))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.write_key(key, self.l2.compare_and_swap(key, expected, new, ttl))
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        self.write_key(key, self.l2.increment(key, delta))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        self.write_key(key, self.l2.expire(key, ttl))
    }

    /// A TTL change: L1 may hold the key for longer than its new TTL.
    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        self.write_key(key, self.l2.get_and_touch(key, ttl))
    }

    fn persist<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        // No TTL any more: L1's shorter one is still correct.
        self.l2.persist(key)
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        let prefix_changed = std::iter::once_with(|| Invalidation::Prefix(prefix.to_owned()));
        self.write_then(self.l2.delete_prefix(prefix), prefix_changed)
    }

    fn clear(&self) -> StoreFuture<'_, usize> {
        let everything = std::iter::once_with(|| Invalidation::Prefix(String::new()));
        self.write_then(self.l2.clear(), everything)
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        if let Some(Some(bus)) = self.bus.get() {
            bus.stop();
        }
        let _ = self.local.l1.close_now();
        self.l2.close()
    }
}

/// Documents pass through to the store: the local tier holds keys only.
#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore> DocumentStore for TieredStore<S> {
    forward_documents!(|this| this.l2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::LayerExt;

    async fn tiered(max_entries: usize) -> (Arc<dyn Store>, Arc<dyn Store>) {
        let l2 = crate::open(&crate::Config::new(crate::BackendKind::Memory))
            .await
            .unwrap();
        (Arc::clone(&l2), l2.layer(Tiered::new(max_entries)))
    }

    #[tokio::test]
    async fn reads_fill_the_local_tier_and_writes_drop_it() {
        let (l2, store) = tiered(100).await;
        store.set("k", b"v1", None).await.unwrap();
        assert_eq!(&store.get("k").await.unwrap()[..], b"v1");
        // Changed behind the tier's back: L1 answers (no bus).
        l2.set("k", b"behind", None).await.unwrap();
        assert_eq!(&store.get("k").await.unwrap()[..], b"v1");
        // A write through the tier drops it.
        store.set("k", b"v2", None).await.unwrap();
        assert_eq!(&store.get("k").await.unwrap()[..], b"v2");
        store.delete("k").await.unwrap();
        assert!(matches!(store.get("k").await, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn the_local_tier_never_outlives_the_stores_ttl() {
        let (l2, store) = tiered(100).await;
        store
            .set("k", b"v", Some(Duration::from_millis(300)))
            .await
            .unwrap();
        store.get("k").await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(matches!(l2.get("k").await, Err(Error::NotFound)));
        assert!(
            matches!(store.get("k").await, Err(Error::NotFound)),
            "L1 kept an expired key"
        );
    }

    #[tokio::test]
    async fn batches_and_prefixes_drop_what_they_change() {
        let (_, store) = tiered(100).await;
        store
            .set_many(&[("a:1", b"1"), ("a:2", b"2"), ("b", b"3")], None)
            .await
            .unwrap();
        for key in ["a:1", "a:2", "b"] {
            store.get(key).await.unwrap();
        }
        assert_eq!(
            store
                .get_many(&["a:1", "x", "b"])
                .await
                .unwrap()
                .iter()
                .filter(|v| v.is_some())
                .count(),
            2
        );
        store.delete_prefix("a:").await.unwrap();
        assert!(matches!(store.get("a:1").await, Err(Error::NotFound)));
        assert_eq!(&store.get("b").await.unwrap()[..], b"3");
        store.increment("n", 5).await.unwrap();
        assert_eq!(&store.get("n").await.unwrap()[..], b"5");
        store.increment("n", 1).await.unwrap();
        assert_eq!(&store.get("n").await.unwrap()[..], b"6");
    }

    #[test]
    fn debug_never_shows_the_bus_password() {
        let layer = Tiered::new(10).bus("redis://:hunter2@cache.internal:6390/0", "ns");
        let text = format!("{layer:?}");
        assert!(!text.contains("hunter2"), "{text}");
        if cfg!(feature = "redis") {
            assert!(text.contains("cache.internal"), "{text}");
        }
        assert!(Tiered::new(10).bus("http://x", "ns").is_err());
        assert!(Tiered::new(10).bus("not a url", "ns").is_err());
    }
}
