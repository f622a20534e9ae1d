//! The cache's behaviour on the memory store: single flight, failures,
//! cancellation, refresh-ahead, tags, and leases between two caches that
//! stand for two processes.

use super::*;
use crate::expiry::ManualClock;
use crate::{MemoryConfig, MemoryStore};
use std::sync::atomic::{AtomicUsize, Ordering};

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new("cache", MemoryConfig::default()).expect("memory store"))
}

fn manual() -> (Arc<dyn Store>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = MemoryStore::with_clock("cache", MemoryConfig::default(), clock.clone())
        .expect("memory store");
    (Arc::new(store), clock)
}

const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

/// A loader that counts its runs and takes `ms` to answer `value`.
fn counted(
    runs: &Arc<AtomicUsize>,
    ms: u64,
    value: &'static str,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn Future<Output = std::result::Result<&'static str, std::io::Error>> + Send>,
> + Send
       + 'static {
    let runs = Arc::clone(runs);
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(value)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_run_one_load() {
    let cache = Cache::new(memory());
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            let loader = counted(&runs, 50, "loaded");
            tokio::spawn(async move { cache.get_or_set("k", MINUTE, loader).await })
        })
        .collect();
    for caller in callers {
        let value = caller.await.expect("task").expect("get_or_set");
        assert_eq!(&value[..], b"loaded");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the loader runs once");
    assert_eq!(&cache.get("k").await.expect("cached")[..], b"loaded");
    assert_eq!(cache.inner.flights.len(), 0, "no flight is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_reaches_every_waiter_and_is_not_cached() {
    let cache = Cache::new(memory());
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let runs = Arc::clone(&runs);
            tokio::spawn(async move {
                cache
                    .get_or_set("k", MINUTE, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<Bytes, _>(std::io::Error::other("upstream is down"))
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        match caller.await.expect("task") {
            Err(Error::Load { key, source }) => {
                assert_eq!(key, "k");
                assert_eq!(source.to_string(), "upstream is down");
            }
            other => panic!("expected the loader's error, got {other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(matches!(cache.get("k").await, Err(Error::NotFound)));
    let value = cache
        .get_or_set("k", MINUTE, counted(&runs, 0, "second try"))
        .await
        .expect("the next call loads again");
    assert_eq!(
        (&value[..], runs.load(Ordering::SeqCst)),
        (&b"second try"[..], 2)
    );
}

#[tokio::test]
async fn negative_caching_keeps_a_failure_for_its_ttl() {
    let (store, clock) = manual();
    let cache = Cache::builder(store)
        .negative_ttl(Duration::from_secs(5))
        .clock(clock.clone())
        .build();
    let fail = || async { Err::<Bytes, _>("no such user") };
    let first = cache.get_or_set("user:9", MINUTE, fail).await;
    assert!(
        matches!(&first, Err(Error::Load { source, .. }) if source.to_string() == "no such user")
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let again = cache
        .get_or_set("user:9", MINUTE, counted(&runs, 0, "found"))
        .await;
    assert!(
        matches!(&again, Err(Error::Load { source, .. }) if source.to_string() == "no such user"),
        "within the negative TTL the failure is answered: {again:?}"
    );
    assert!(matches!(cache.get("user:9").await, Err(Error::Load { .. })));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    clock.advance(Duration::from_secs(6));
    let value = cache
        .get_or_set("user:9", MINUTE, counted(&runs, 0, "found"))
        .await
        .expect("after it, the loader runs");
    assert_eq!(
        (&value[..], runs.load(Ordering::SeqCst)),
        (&b"found"[..], 1)
    );
}

#[tokio::test]
async fn a_panicking_loader_is_an_error() {
    let cache = Cache::new(memory());
    let got = cache
        .get_or_set("k", MINUTE, || async {
            if true {
                panic!("loader bug");
            }
            Ok::<&'static str, std::io::Error>("never")
        })
        .await;
    assert!(
        matches!(&got, Err(Error::Load { source, .. }) if source.to_string() == "the loader panicked")
    );
    let got = cache
        .get_or_set(
            "k",
            MINUTE,
            || -> std::future::Ready<std::result::Result<Bytes, std::io::Error>> {
                panic!("before the future")
            },
        )
        .await;
    assert!(matches!(got, Err(Error::Load { .. })));
    assert_eq!(cache.inner.flights.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    let cache = Cache::new(memory());
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let cache = cache.clone();
        let loader = counted(&runs, 60_000, "never");
        tokio::spawn(async move { cache.get_or_set("k", MINUTE, loader).await })
    };
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waiter = {
        let cache = cache.clone();
        let loader = counted(&runs, 0, "from the waiter");
        tokio::spawn(async move { cache.get_or_set("k", MINUTE, loader).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let value = waiter.await.expect("task").expect("the waiter loads");
    assert_eq!(&value[..], b"from the waiter");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_answers_at_once_and_refreshes_once() {
    let (store, clock) = manual();
    let cache = Cache::builder(store)
        .refresh_ahead(Duration::from_secs(3))
        .clock(clock.clone())
        .build();
    let ttl = Some(Duration::from_secs(10));
    let runs = Arc::new(AtomicUsize::new(0));
    cache
        .get_or_set("k", ttl, counted(&runs, 0, "v1"))
        .await
        .expect("load");
    // 5 s left: above the threshold, no refresh.
    clock.advance(Duration::from_secs(5));
    cache
        .get_or_set("k", ttl, counted(&runs, 0, "v2"))
        .await
        .expect("hit");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // 2 s left: every hit answers the old value; one refresh starts.
    clock.advance(Duration::from_secs(3));
    for _ in 0..20 {
        let value = cache
            .get_or_set("k", ttl, counted(&runs, 30, "v2"))
            .await
            .expect("hit");
        assert_eq!(&value[..], b"v1", "a hit never waits for the refresh");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while &cache.get("k").await.expect("present")[..] != b"v2" {
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one refresh for all the hits"
    );
    // The refreshed value has a whole TTL again.
    clock.advance(Duration::from_secs(5));
    assert_eq!(&cache.get("k").await.expect("still there")[..], b"v2");
}

#[tokio::test]
async fn tags_drop_every_value_they_carry_and_nothing_else() {
    let cache = Cache::new(memory());
    cache
        .set_tagged("u42:profile", b"p", None, &["user:42"])
        .await
        .unwrap();
    cache
        .set_tagged("u42:orders", b"o", None, &["user:42", "orders"])
        .await
        .unwrap();
    cache
        .set_tagged("u7:orders", b"o7", None, &["user:7", "orders"])
        .await
        .unwrap();
    cache.set("plain", b"x", None).await.unwrap();
    cache.invalidate_tag("user:42").await.unwrap();
    assert!(matches!(
        cache.get("u42:profile").await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        cache.get("u42:orders").await,
        Err(Error::NotFound)
    ));
    assert_eq!(&cache.get("u7:orders").await.unwrap()[..], b"o7");
    assert_eq!(&cache.get("plain").await.unwrap()[..], b"x");
    // Written again after the invalidation: valid under the new version.
    cache
        .set_tagged("u42:profile", b"p2", None, &["user:42"])
        .await
        .unwrap();
    assert_eq!(&cache.get("u42:profile").await.unwrap()[..], b"p2");
    cache.invalidate_tag("orders").await.unwrap();
    assert!(matches!(cache.get("u7:orders").await, Err(Error::NotFound)));
    assert_eq!(&cache.get("u42:profile").await.unwrap()[..], b"p2");
    // get_or_set_tagged reloads what a tag dropped.
    let runs = Arc::new(AtomicUsize::new(0));
    let value = cache
        .get_or_set_tagged("u7:orders", None, &["orders"], counted(&runs, 0, "fresh"))
        .await
        .unwrap();
    assert_eq!(
        (&value[..], runs.load(Ordering::SeqCst)),
        (&b"fresh"[..], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_load_makes_its_value_stale() {
    let cache = Cache::new(memory());
    let started = Arc::new(tokio::sync::Notify::new());
    let proceed = Arc::new(tokio::sync::Notify::new());
    let load = {
        let cache = cache.clone();
        let (started, proceed) = (Arc::clone(&started), Arc::clone(&proceed));
        tokio::spawn(async move {
            cache
                .get_or_set_tagged("k", None, &["t"], move || async move {
                    started.notify_one();
                    proceed.notified().await;
                    Ok::<_, std::io::Error>("computed before the invalidation")
                })
                .await
        })
    };
    started.notified().await;
    cache.invalidate_tag("t").await.unwrap();
    proceed.notify_one();
    load.await
        .unwrap()
        .expect("the caller still gets its value");
    assert!(
        matches!(cache.get("k").await, Err(Error::NotFound)),
        "but it is not served to later readers"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let cache = Cache::new(memory());
    for key in ["", "_kvs/tag/x", "_kvs/lease/k"] {
        assert!(
            matches!(
                cache.set(key, b"v", None).await,
                Err(Error::InvalidKey { .. })
            ),
            "{key:?}"
        );
        let loaded = cache
            .get_or_set(key, None, || async { Ok::<_, std::io::Error>("v") })
            .await;
        assert!(matches!(loaded, Err(Error::InvalidKey { .. })), "{key:?}");
    }
    let long_tag = "t".repeat(MAX_TAG_LEN + 1);
    for tags in [vec![""], vec![long_tag.as_str()]] {
        assert!(matches!(
            cache.set_tagged("k", b"v", None, &tags).await,
            Err(Error::InvalidKey { .. })
        ));
    }
    let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(cache.set_tagged("k", b"v", None, &many).await.is_err());
    assert!(matches!(
        cache.invalidate_tag("").await,
        Err(Error::InvalidKey { .. })
    ));
    assert_eq!(
        cache.store().count("").await.unwrap(),
        0,
        "nothing was written"
    );
    // A value that the cache did not write is reported, not served or replaced.
    cache
        .store()
        .set("plain", b"{\"raw\":1}", None)
        .await
        .unwrap();
    let got = cache
        .get_or_set("plain", None, || async { Ok::<_, std::io::Error>("v") })
        .await;
    assert!(
        matches!(&got, Err(Error::InvalidValue { reason, .. }) if reason.contains("not a cache entry")),
        "{got:?}"
    );
    assert_eq!(
        &cache.store().get("plain").await.unwrap()[..],
        b"{\"raw\":1}"
    );
}

#[test]
fn long_keys_get_hashed_bookkeeping_keys() {
    let key = "k".repeat(MAX_KEY_LEN);
    let lease = meta_key("lease", &key);
    assert!(
        lease.len() <= MAX_KEY_LEN && lease.starts_with("_kvs/lease#"),
        "{lease}"
    );
    assert_ne!(lease, meta_key("lease", &"j".repeat(MAX_KEY_LEN)));
    assert_eq!(meta_key("tag", "user:42"), "_kvs/tag/user:42");
}

// ---- two caches over one store: what two processes see ----------------

fn distributed(store: &Arc<dyn Store>, lease_ms: u64) -> Cache {
    Cache::builder(Arc::clone(store))
        .distributed(Lease {
            ttl: Duration::from_millis(lease_ms),
            poll: Duration::from_millis(2),
            max_poll: Duration::from_millis(20),
            max_wait: Duration::from_secs(60),
        })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_makes_one_load_across_caches() {
    let store = memory();
    let caches = [distributed(&store, 5_000), distributed(&store, 5_000)];
    let runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..200)
        .map(|i| {
            let cache = caches[i % 2].clone();
            let loader = counted(&runs, 50, "once");
            tokio::spawn(async move { cache.get_or_set("k", MINUTE, loader).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(&caller.await.unwrap().unwrap()[..], b"once");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_is_taken_over_after_its_ttl() {
    let store = memory();
    // What a process killed while loading leaves behind.
    store
        .set_if_absent("_kvs/lease/k", b"Ldead", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    let cache = distributed(&store, 5_000);
    let started = std::time::Instant::now();
    let runs = Arc::new(AtomicUsize::new(0));
    let value = cache
        .get_or_set("k", MINUTE, counted(&runs, 0, "took over"))
        .await
        .unwrap();
    assert_eq!(&value[..], b"took over");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited for the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_reaches_the_other_caches_waiters() {
    let store = memory();
    let (a, b) = (distributed(&store, 5_000), distributed(&store, 5_000));
    let failing = tokio::spawn(async move {
        a.get_or_set("k", MINUTE, || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err::<Bytes, _>("the database is gone")
        })
        .await
    });
    // Let `a` take the lease first.
    while !store.exists("_kvs/lease/k").await.unwrap() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let waited = b.get_or_set("k", MINUTE, counted(&runs, 0, "b's")).await;
    assert!(
        matches!(&waited, Err(Error::Load { source, .. }) if source.to_string() == "the database is gone"),
        "{waited:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0, "b never ran its loader");
    assert!(failing.await.unwrap().is_err());
    // A later call, which waited on nothing, loads.
    let value = b
        .get_or_set("k", MINUTE, counted(&runs, 0, "b's"))
        .await
        .unwrap();
    assert_eq!(&value[..], b"b's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loader_keeps_its_lease() {
    let store = memory();
    let (a, b) = (distributed(&store, 150), distributed(&store, 150));
    let runs = Arc::new(AtomicUsize::new(0));
    let slow = {
        let loader = counted(&runs, 600, "slow");
        tokio::spawn(async move { a.get_or_set("k", MINUTE, loader).await })
    };
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let value = b
        .get_or_set("k", MINUTE, counted(&runs, 0, "fast"))
        .await
        .unwrap();
    assert_eq!(&value[..], b"slow", "the lease was renewed, so b waited");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    slow.await.unwrap().unwrap();
}

#[tokio::test]
async fn typed_values_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct User {
        name: String,
    }
    let cache = Cache::new(memory());
    let users = cache.typed::<User>();
    let ada = users
        .get_or_set("user:1", MINUTE, || async {
            Ok::<_, std::io::Error>(User { name: "ada".into() })
        })
        .await
        .unwrap();
    assert_eq!(ada.name, "ada");
    assert_eq!(users.get("user:1").await.unwrap(), ada);
    cache.set("user:2", b"not json", None).await.unwrap();
    assert!(matches!(
        users.get("user:2").await,
        Err(Error::InvalidValue { .. })
    ));
}
