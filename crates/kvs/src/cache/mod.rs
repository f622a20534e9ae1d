//! Caching expensive work over any store: one load per key at a time (in
//! this process, and with [`CacheBuilder::distributed`] across every
//! process sharing the store), refresh-ahead, negative caching and tag
//! invalidation.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvs::Result<()> {
//! use std::time::Duration;
//! use kvs::cache::Cache;
//!
//! let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
//! let cache = Cache::new(store);
//! let page = cache
//!     .get_or_set("page:/about", Some(Duration::from_secs(60)), || async {
//!         // An expensive render, a slow API: run once per key however
//!         // many requests miss at the same time.
//!         Ok::<_, std::io::Error>("<h1>About</h1>")
//!     })
//!     .await?;
//! assert_eq!(&page[..], b"<h1>About</h1>");
//! # Ok(())
//! # }
//! ```
//!
//! # How values are stored
//!
//! The cache writes each value behind a small header (its deadline, its
//! tags' versions, whether it is a cached failure), so read values
//! written by a `Cache` through a `Cache`: [`Cache::get`] or the store's
//! own listing and deleting. Its bookkeeping keys start with
//! `_kvs/` (`_kvs/lease/<key>`, `_kvs/tag/<tag>`), a prefix the cache
//! refuses for keys of its own.
//!
//! # Tags
//!
//! [`Cache::set_tagged`] and [`Cache::get_or_set_tagged`] record, with the
//! value, the current version of each tag (a counter at `_kvs/tag/<tag>`,
//! 0 when absent). [`Cache::invalidate_tag`] increments the counter: one
//! write, whatever the number of values, and no scan. A read of a tagged
//! value reads its tags' counters in the same call (one `get_many`) and
//! treats a value written under an older version as absent. A tag's
//! counter never expires; it is one small key per tag.
//!
//! # Failures
//!
//! A loader's error reaches the caller that ran it and every caller that
//! waited on it, as [`Error::Load`] with the same source, and is not
//! cached: the next call runs the loader again. With
//! [`CacheBuilder::negative_ttl`], the failure is stored for that long and
//! calls in between get it without running the loader. A loader that
//! panics is an `Error::Load` too, never a panic in the callers.
//!
//! # Files
//!
//! `envelope.rs` (the stored form), `flight.rs` (single flight in the
//! process), `lease.rs` (across processes), `typed.rs` ([`TypedCache`]).

mod bus;
mod envelope;
mod flight;
mod lease;
mod tiered;
mod typed;

pub use lease::Lease;
pub use tiered::{BusUrl, Tiered, TieredStore, DEFAULT_TIER_TTL};
pub use typed::TypedCache;

use crate::deadline::check_ttl;
use crate::expiry::{Clock, SystemClock};
use crate::key::validate_key;
use crate::{Bytes, Error, Result, Store, MAX_KEY_LEN};
use envelope::{Envelope, MAX_TAG_LEN};
use flight::{Flights, Joined};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// The prefix of the cache's own keys.
const RESERVED: &str = "_kvs/";

/// The most tags one value can carry.
const MAX_TAGS: usize = 64;

/// A loader's error, shared by everyone who waited on it.
type LoadError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A cache over a store. Cheap to clone: clones share the store and the
/// loads in progress.
///
/// Made by [`Cache::new`] (single flight in this process) or
/// [`Cache::builder`] (across processes, refresh-ahead, negative caching).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    options: Options,
    clock: Arc<dyn Clock>,
    /// Loads in progress, which callers of the same key wait for.
    flights: Flights,
    /// Refresh-ahead loads in progress (one per key); nobody waits for
    /// them, since the value they replace is still live.
    refreshes: Flights,
}

#[derive(Debug, Clone, Default)]
struct Options {
    lease: Option<Lease>,
    negative_ttl: Option<Duration>,
    refresh_ahead: Option<Duration>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("lease", &self.inner.options.lease)
            .field("negative_ttl", &self.inner.options.negative_ttl)
            .field("refresh_ahead", &self.inner.options.refresh_ahead)
            .finish_non_exhaustive()
    }
}

/// Options of a [`Cache`]; made by [`Cache::builder`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::time::Duration;
/// use kvs::cache::{Cache, Lease};
///
/// let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
/// let cache = Cache::builder(store)
///     .distributed(Lease::default())
///     .refresh_ahead(Duration::from_secs(10))
///     .negative_ttl(Duration::from_secs(5))
///     .build();
/// # Ok(())
/// # }
/// ```
pub struct CacheBuilder {
    store: Arc<dyn Store>,
    options: Options,
    clock: Arc<dyn Clock>,
}

impl CacheBuilder {
    /// One load per key across every process sharing the store, through a
    /// lease key (see [`Lease`]); without it, one load per key in each
    /// process.
    pub fn distributed(mut self, lease: Lease) -> CacheBuilder {
        self.options.lease = Some(lease);
        self
    }

    /// Stores a loader's failure for `ttl`: calls in between get the same
    /// [`Error::Load`] without running the loader.
    pub fn negative_ttl(mut self, ttl: Duration) -> CacheBuilder {
        self.options.negative_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// A hit on a value with less than `threshold` left returns it at
    /// once and starts one background load that replaces it (needs a
    /// tokio runtime; without one, the value simply expires).
    pub fn refresh_ahead(mut self, threshold: Duration) -> CacheBuilder {
        self.options.refresh_ahead = (!threshold.is_zero()).then_some(threshold);
        self
    }

    /// Reads time from `clock` for refresh-ahead (a
    /// [`ManualClock`](crate::expiry::ManualClock) in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> CacheBuilder {
        self.clock = clock;
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                store: self.store,
                options: self.options,
                clock: self.clock,
                flights: Flights::default(),
                refreshes: Flights::default(),
            }),
        }
    }
}

/// A live entry, as a lookup finds it.
pub(crate) enum Found {
    Value(Bytes, Option<u64>),
    Failure(String),
}

impl Found {
    fn into_result(self, key: &str) -> Result<Bytes> {
        match self {
            Found::Value(value, _) => Ok(value),
            Found::Failure(message) => Err(load_error(key, message)),
        }
    }
}

impl Cache {
    /// A cache over `store` with single flight in this process.
    pub fn new(store: Arc<dyn Store>) -> Cache {
        Cache::builder(store).build()
    }

    /// A cache over `store` with more options.
    pub fn builder(store: Arc<dyn Store>) -> CacheBuilder {
        CacheBuilder {
            store,
            options: Options::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// This cache's values as `T`s, in JSON.
    pub fn typed<T>(&self) -> TypedCache<T> {
        TypedCache::new(self.clone())
    }

    /// The cached value of `key`: [`Error::NotFound`] if it is absent,
    /// expired or invalidated by a tag, [`Error::Load`] if a failure is
    /// cached (see [`CacheBuilder::negative_ttl`]).
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        check_key(key)?;
        match self.lookup(key).await? {
            Some(found) => found.into_result(key),
            None => Err(Error::NotFound),
        }
    }

    /// Caches `value` under `key` for `ttl` (`None`: until deleted).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        self.set_tagged(key, value, ttl, &[]).await
    }

    /// Caches `value` under `key` for `ttl`, dropped by
    /// [`invalidate_tag`](Cache::invalidate_tag) of any of `tags`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvs::Result<()> {
    /// use kvs::cache::Cache;
    /// let cache = Cache::new(kvs::open(&kvs::Config::from_yaml("type: memory")?).await?);
    /// cache.set_tagged("user:42:profile", b"{..}", None, &["user:42"]).await?;
    /// cache.set_tagged("user:42:orders", b"[..]", None, &["user:42", "orders"]).await?;
    /// cache.invalidate_tag("user:42").await?;
    /// assert!(matches!(cache.get("user:42:orders").await, Err(kvs::Error::NotFound)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_tagged(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<()> {
        check_key(key)?;
        check_ttl(key, ttl)?;
        check_tags(tags)?;
        let versions = self.versions(tags).await?;
        self.write(key, value, ttl, &versions, false).await
    }

    /// Removes `key`; `Ok(())` if it was absent.
    pub async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.inner.store.delete(key).await
    }

    /// Drops every value cached with `tag`, in one write.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        check_tags(&[tag])?;
        self.inner.store.increment(&meta_key("tag", tag), 1).await?;
        Ok(())
    }

    /// The cached value of `key`, or else the value `loader` makes, cached
    /// for `ttl`.
    ///
    /// Of the callers that miss `key` at the same time, one runs its
    /// loader and the others wait for its outcome (across processes with
    /// [`CacheBuilder::distributed`]). The loader's error reaches all of
    /// them as [`Error::Load`] and is not cached (but see
    /// [`CacheBuilder::negative_ttl`]). A caller cancelled while loading
    /// hands the load to one of its waiters.
    pub async fn get_or_set<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.get_or_set_tagged(key, ttl, &[], loader).await
    }

    /// [`get_or_set`](Cache::get_or_set), caching the value with `tags`
    /// (see [`set_tagged`](Cache::set_tagged)). The tags' versions are
    /// read before the loader runs, so an invalidation while it runs makes
    /// its value stale at once.
    pub async fn get_or_set_tagged<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        loader: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        check_key(key)?;
        check_ttl(key, ttl)?;
        check_tags(tags)?;
        let mut loader = Some(loader);
        loop {
            // Join first, read after: of the callers asking for one key at
            // once, only the leader reads the store (a stampede of misses
            // is one read and one load, not a read per caller).
            match self.inner.flights.join(key) {
                Joined::Leader(leader) => {
                    let (outcome, lease) = self.lead(key, ttl, tags, &mut loader).await;
                    // The waiters first: releasing the lease is for the
                    // other processes, which poll the value anyway.
                    leader.finish(&outcome);
                    if let Some(held) = lease {
                        held.release(outcome.as_ref().err()).await;
                    }
                    return outcome;
                }
                Joined::Waiter(waiter) => {
                    if let Some(outcome) = waiter.outcome().await {
                        return outcome;
                    }
                    // The leader was cancelled: start over.
                }
            }
        }
    }

    /// What a flight's leader does: read the store, and on a miss load
    /// the value (under the lease, when distributed). Returns the lease
    /// still held, for the caller to release once the waiters have the
    /// outcome.
    async fn lead<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        loader: &mut Option<F>,
    ) -> (Result<Bytes>, Option<lease::Held<'_>>)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        match self.lookup(key).await {
            Ok(Some(Found::Value(value, deadline))) => {
                if self.due_for_refresh(deadline) {
                    if let Some(loader) = loader.take() {
                        self.refresh_in_background(key, ttl, tags, loader);
                    }
                }
                return (Ok(value), None);
            }
            Ok(Some(found)) => return (found.into_result(key), None),
            Ok(None) => {}
            Err(e) => return (Err(e), None),
        }
        // Only a leader that missed or a refresh takes the loader, and
        // both return: it is always here.
        let Some(loader) = loader.take() else {
            return (
                Err(load_error(key, "the loader was already used".into())),
                None,
            );
        };
        let versions = match self.versions(tags).await {
            Ok(versions) => versions,
            Err(e) => return (Err(e), None),
        };
        let lease = match &self.inner.options.lease {
            None => None,
            Some(options) => match lease::acquire(self, key, options).await {
                Ok(lease::Acquired::Held(held)) => {
                    // Another process may have loaded, written and
                    // released just before this one took the lease.
                    match self.lookup(key).await {
                        Ok(Some(found)) => return (found.into_result(key), Some(held)),
                        Ok(None) => Some(held),
                        Err(e) => return (Err(e), Some(held)),
                    }
                }
                Ok(lease::Acquired::Filled(found)) => return (found.into_result(key), None),
                Ok(lease::Acquired::Failed(message)) => {
                    return (Err(load_error(key, message)), None)
                }
                Err(e) => return (Err(e), None),
            },
        };
        let outcome = self
            .load_and_write(key, ttl, &versions, lease.as_ref(), loader, true)
            .await;
        (outcome, lease)
    }

    fn due_for_refresh(&self, deadline: Option<u64>) -> bool {
        match (self.inner.options.refresh_ahead, deadline) {
            (Some(threshold), Some(deadline)) => {
                let left = deadline.saturating_sub(self.inner.clock.now_ms());
                u128::from(left) < threshold.as_millis()
            }
            _ => false,
        }
    }

    /// Starts one background load of `key` unless one is running here (or,
    /// when distributed, in another process).
    fn refresh_in_background<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        loader: F,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = self.clone();
        let key = key.to_owned();
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        runtime.spawn(async move {
            let Some(leader) = cache.inner.refreshes.lead(&key) else {
                return;
            };
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let outcome = cache.refresh(&key, ttl, &tags, loader).await;
            if let Err(e) = &outcome {
                tracing::debug!(error = %e, "kvs cache: a refresh-ahead load failed");
            }
            leader.finish(&outcome);
        });
    }

    /// A refresh: like a load, but a failure leaves the current value in
    /// place, and a lease held elsewhere means someone else refreshes.
    async fn refresh<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        loader: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let versions = self.versions(tags).await?;
        let store = self.inner.store.as_ref();
        let lease = match &self.inner.options.lease {
            None => None,
            Some(options) => match lease::try_acquire(store, key, options).await? {
                Some(held) => Some(held),
                None => return self.get(key).await,
            },
        };
        let outcome = self
            .load_and_write(key, ttl, &versions, lease.as_ref(), loader, false)
            .await;
        if let Some(held) = lease {
            // A failed refresh is not the waiters' failure: release plainly.
            held.release(None).await;
        }
        outcome
    }

    /// Runs `loader`, renewing `lease` while it runs, and writes the value
    /// it returns under `versions`. Its failure becomes [`Error::Load`],
    /// and is cached for the negative TTL too when `cache_failure` (a
    /// refresh's failure is not: the current value stays).
    async fn load_and_write<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        versions: &[(String, i64)],
        lease: Option<&lease::Held<'_>>,
        loader: F,
        cache_failure: bool,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        V: Into<Bytes>,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let loaded = match lease {
            Some(held) => held.keep_while(run(loader)).await,
            None => run(loader).await,
        };
        match loaded {
            Ok(value) => self
                .write(key, &value, ttl, versions, false)
                .await
                .map(|()| value),
            Err(source) => {
                let negative = self.inner.options.negative_ttl.filter(|_| cache_failure);
                if let Some(negative) = negative {
                    let message = source.to_string();
                    let stored = self
                        .write(key, message.as_bytes(), Some(negative), versions, true)
                        .await;
                    if let Err(e) = stored {
                        tracing::debug!(error = %e, "kvs cache: could not cache a failure");
                    }
                }
                Err(Error::Load {
                    key: key.to_owned(),
                    source,
                })
            }
        }
    }

    /// The live entry of `key`, if any: a value whose tags are all still
    /// at the versions it was written under, or a cached failure.
    pub(crate) async fn lookup(&self, key: &str) -> Result<Option<Found>> {
        let bytes = match self.inner.store.get(key).await {
            Ok(bytes) => bytes,
            Err(Error::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entry = envelope::decode(&bytes).map_err(|reason| Error::InvalidValue {
            key: key.to_owned(),
            reason: format!("is not a cache entry: {reason}"),
        })?;
        if !entry.tags.is_empty() && !self.tags_current(&entry).await? {
            return Ok(None);
        }
        Ok(Some(if entry.negative {
            Found::Failure(String::from_utf8_lossy(&entry.payload).into_owned())
        } else {
            Found::Value(entry.payload, entry.deadline_ms)
        }))
    }

    async fn tags_current(&self, entry: &Envelope) -> Result<bool> {
        let names: Vec<&str> = entry.tags.iter().map(|(tag, _)| tag.as_str()).collect();
        let now = self.versions(&names).await?;
        Ok(now == entry.tags)
    }

    /// Each tag with its current version (0 for a tag never invalidated).
    async fn versions(&self, tags: &[&str]) -> Result<Vec<(String, i64)>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = tags.iter().map(|tag| meta_key("tag", tag)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let counters = self.inner.store.get_many(&refs).await?;
        tags.iter()
            .zip(keys.iter().zip(counters))
            .map(|(tag, (key, counter))| {
                let version = match counter {
                    None => 0,
                    Some(bytes) => {
                        crate::raw::parse_counter(&bytes).ok_or_else(|| Error::InvalidValue {
                            key: key.clone(),
                            reason: "is not a tag version (a decimal counter)".into(),
                        })?
                    }
                };
                Ok(((*tag).to_owned(), version))
            })
            .collect()
    }

    async fn write(
        &self,
        key: &str,
        payload: &[u8],
        ttl: Option<Duration>,
        versions: &[(String, i64)],
        negative: bool,
    ) -> Result<()> {
        let deadline = match ttl {
            Some(ttl) if !ttl.is_zero() => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                Some(self.inner.clock.now_ms().saturating_add(ms))
            }
            _ => None,
        };
        let bytes = envelope::encode(deadline, versions, negative, payload);
        self.inner.store.set(key, &bytes, ttl).await
    }
}

/// Runs a loader, turning its error, or a panic in it, into the error
/// every waiter gets.
async fn run<V, E, F, Fut>(loader: F) -> std::result::Result<Bytes, LoadError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<V, E>>,
    V: Into<Bytes>,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    let panicked = || -> LoadError { Arc::new(Message("the loader panicked".into())) };
    let Ok(future) = std::panic::catch_unwind(AssertUnwindSafe(loader)) else {
        return Err(panicked());
    };
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(value)) => Ok(value.into()),
        Ok(Err(e)) => Err(Arc::from(e.into())),
        Err(_) => Err(panicked()),
    }
}

/// An [`Error::Load`] carrying `message` (a failure read back from the
/// store, or the cache's own).
pub(crate) fn load_error(key: &str, message: String) -> Error {
    Error::Load {
        key: key.to_owned(),
        source: Arc::new(Message(message)),
    }
}

/// A failure known only by its message.
#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// A key of the cache's own: `_kvs/<kind>/<name>`, or, if that would be
/// too long a key, `_kvs/<kind>#<SHA-256 of name>`.
pub(crate) fn meta_key(kind: &str, name: &str) -> String {
    let key = format!("{RESERVED}{kind}/{name}");
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{RESERVED}{kind}#{hex}")
}

fn check_key(key: &str) -> Result<()> {
    validate_key(key)?;
    if key.starts_with(RESERVED) {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: format!("starts with {RESERVED:?}, which the cache keeps for its own keys"),
        });
    }
    Ok(())
}

fn check_tags(tags: &[&str]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidKey {
            key: tags.join(","),
            reason: format!(
                "is {} tags; a value may carry at most {MAX_TAGS}",
                tags.len()
            ),
        });
    }
    for tag in tags {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN {
            return Err(Error::InvalidKey {
                key: (*tag).to_owned(),
                reason: format!("is not a tag: a tag has 1 to {MAX_TAG_LEN} bytes"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
