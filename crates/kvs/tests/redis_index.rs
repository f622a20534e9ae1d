//! The ordered index of the Redis backend (`index=true`): the whole
//! conformance suite on the standalone server and on the 3-master cluster
//! of `scripts/test`, and what the index promises besides: it never answers
//! an expired key and never outgrows the live keys by more than its
//! documented bound, it lists what a `SCAN` lists, it is built for a
//! namespace that already holds keys (resumably, while writes go on), and
//! it stays exact with two processes writing and listing at once.

use kvs::testkit::env::{server, with_query};
use kvs::testkit::{unique_namespace, Capabilities, ConfigHarness};
use kvs::{Config, Error, RedisStore, Store};
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

fn capabilities() -> Capabilities {
    let mut caps = Capabilities::new();
    caps.shared_namespaces = true;
    caps.persistent = true;
    caps.manual_clock = false;
    caps
}

/// A harness for the servers in `variable`, every store with the index.
fn indexed_harness(variable: &str, backend: &str) -> Option<ConfigHarness> {
    let urls = server(variable, backend)?;
    let urls: Vec<String> = urls
        .split(',')
        .map(|url| with_query(url.trim(), "index=true"))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    Some(ConfigHarness::from_urls(&urls, capabilities()))
}

mod standalone {
    use super::*;

    async fn harness() -> Option<ConfigHarness> {
        indexed_harness("KVS_TEST_REDIS_URL", "redis (indexed)")
    }

    kvs::conformance_tests!(harness);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_64_tasks_by_2000_operations() {
        let Some(h) = harness().await else { return };
        kvs::testkit::cases::load(&h, 64, 2_000).await;
    }
}

mod cluster {
    use super::*;

    async fn harness() -> Option<ConfigHarness> {
        indexed_harness("KVS_TEST_REDIS_CLUSTER_URL", "redis cluster (indexed)")
    }

    kvs::conformance_tests!(harness);
}

/// The standalone test server's URL, or `None` after the skip line.
fn standalone_url() -> Option<String> {
    server("KVS_TEST_REDIS_URL", "redis (indexed)")
        .map(|urls| urls.split(',').next().unwrap_or_default().trim().to_owned())
}

/// `kvs::open` of `namespace` at `url`, with `params` added.
async fn open(url: &str, namespace: &str, params: &str) -> Arc<dyn Store> {
    let mut query = format!("namespace={namespace}");
    if !params.is_empty() {
        query = format!("{query}&{params}");
    }
    let config = Config::from_url(&with_query(url, &query)).expect("store URL");
    kvs::open(&config).await.expect("open")
}

/// A plain connection to the server at `url`, to look at the index itself.
async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis URL");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// The sizes of `namespace`'s index and deadline set (a plain namespace
/// name: its escaped form is itself).
async fn index_sizes(conn: &mut redis::aio::MultiplexedConnection, namespace: &str) -> (u64, u64) {
    let keys: u64 = redis::cmd("ZCARD")
        .arg(format!("{namespace}\\i"))
        .query_async(conn)
        .await
        .expect("ZCARD");
    let deadlines: u64 = redis::cmd("ZCARD")
        .arg(format!("{namespace}\\t"))
        .query_async(conn)
        .await
        .expect("ZCARD");
    (keys, deadlines)
}

/// keyv #455: members outlived their keys, and the set grew without bound.
/// Here 100,000 keys expire, and one listing later the index holds the 100
/// live keys and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_leave_the_index_at_the_next_listing() {
    let Some(url) = standalone_url() else { return };
    let namespace = unique_namespace();
    let store = open(&url, &namespace, "index=true").await;
    let value = [7u8; 16];
    let names: Vec<String> = (0..100_000).map(|i| format!("short:{i:06}")).collect();
    for chunk in names.chunks(1000) {
        let entries: Vec<(&str, &[u8])> = chunk.iter().map(|k| (k.as_str(), &value[..])).collect();
        store
            .set_many(&entries, Some(Duration::from_secs(1)))
            .await
            .expect("set_many");
    }
    for i in 0..100 {
        store
            .set(&format!("live:{i:03}"), b"v", None)
            .await
            .expect("set");
    }
    let mut conn = raw(&url).await;
    let (keys, deadlines) = index_sizes(&mut conn, &namespace).await;
    // On a slow machine the first keys expire while the last are written,
    // and the later writes prune them: fewer than 100,000 may be left.
    assert_eq!(keys, deadlines + 100, "every short key has its deadline");
    assert!(keys <= 100_100);

    // Every short key expires within a second of its write; wait that
    // second and a generous margin after the last one.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(store.count("").await.expect("count"), 100);
    let listed = store.list("").await.expect("list");
    assert_eq!(listed.len(), 100);
    assert!(listed.iter().all(|k| k.starts_with("live:")));
    assert_eq!(index_sizes(&mut conn, &namespace).await, (100, 0));
    store.clear().await.expect("clear");
}

/// With nothing listing, writes prune: each write that gives a key a
/// deadline removes up to two members that are due, so 500 such writes
/// after 1,000 keys expired leave only the 500 live keys in the index.
#[tokio::test]
async fn writes_prune_expired_keys_when_nothing_lists() {
    let Some(url) = standalone_url() else { return };
    let namespace = unique_namespace();
    let store = open(&url, &namespace, "index=true").await;
    let names: Vec<String> = (0..1000).map(|i| format!("short:{i:04}")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
    store
        .set_many(&entries, Some(Duration::from_millis(200)))
        .await
        .expect("set_many");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for i in 0..500 {
        store
            .set(
                &format!("live:{i:03}"),
                b"v",
                Some(Duration::from_secs(600)),
            )
            .await
            .expect("set");
    }
    let mut conn = raw(&url).await;
    assert_eq!(index_sizes(&mut conn, &namespace).await, (500, 500));
    store.clear().await.expect("clear");
}

/// A namespace that already holds keys: an indexed store refuses to list
/// (it would miss them) and says how to build the index; a build stopped
/// after its first step resumes, writes made meanwhile through indexed
/// stores are kept, and the finished index lists exactly what `SCAN` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_built_for_existing_keys_resumably_while_writes_go_on() {
    let Some(url) = standalone_url() else { return };
    let namespace = unique_namespace();
    let plain = open(&url, &namespace, "").await;
    let value = [1u8; 8];
    let names: Vec<String> = (0..5000).map(|i| format!("old:{i:05}")).collect();
    for (i, chunk) in names.chunks(500).enumerate() {
        let entries: Vec<(&str, &[u8])> = chunk.iter().map(|k| (k.as_str(), &value[..])).collect();
        let ttl = (i % 2 == 0).then(|| Duration::from_secs(600));
        plain.set_many(&entries, ttl).await.expect("set_many");
    }

    let indexed = open(&url, &namespace, "index=true").await;
    let refused = indexed
        .list("")
        .await
        .expect_err("listing without a built index");
    assert!(
        refused.to_string().contains("kvs index build"),
        "the error says how to build the index: {refused}"
    );
    assert!(matches!(
        indexed.count("old:").await,
        Err(Error::Backend { .. })
    ));

    let config = Config::from_url(&with_query(&url, &format!("namespace={namespace}")))
        .expect("store URL")
        .redis;
    let first =
        RedisStore::build_index_with(&namespace, config.clone(), |_| ControlFlow::Break(()))
            .await
            .expect("first step");
    assert!(!first.complete && !first.resumed);
    let during = indexed
        .list("")
        .await
        .expect_err("listing while it is built");
    assert!(during.to_string().contains("being built"), "{during}");

    // Writes through the indexed store while the build is half done.
    indexed.set("new:1", b"n", None).await.expect("set");
    indexed.delete("old:00007").await.expect("delete");
    indexed
        .set("old:00008", b"changed", Some(Duration::from_secs(60)))
        .await
        .expect("set");

    let rest = RedisStore::build_index(&namespace, config.clone())
        .await
        .expect("resumed build");
    assert!(rest.complete && rest.resumed);
    let again = RedisStore::build_index(&namespace, config)
        .await
        .expect("a third call");
    assert!(again.complete && !again.resumed && again.added == 0);

    let mut expected: BTreeSet<String> = names.iter().cloned().collect();
    expected.remove("old:00007");
    expected.insert("new:1".into());
    let listed = indexed.list("").await.expect("list");
    assert_eq!(listed, expected.iter().cloned().collect::<Vec<_>>());
    assert_eq!(indexed.count("old:").await.expect("count"), 4999);
    let mut conn = raw(&url).await;
    // The keys with a TTL have deadlines: every other chunk of 500, less
    // old:00007 (deleted); old:00008 was one of them already.
    assert_eq!(index_sizes(&mut conn, &namespace).await, (5000, 2499));
    indexed.clear().await.expect("clear");
    assert_eq!(plain.list("").await.expect("list"), Vec::<String>::new());
}

/// Once a namespace has an index, a store opened without `index=true`
/// finds it and writes through it, so no write ever goes around the index.
#[tokio::test]
async fn a_store_without_the_option_keeps_an_existing_index() {
    let Some(url) = standalone_url() else { return };
    let namespace = unique_namespace();
    let indexed = open(&url, &namespace, "index=true").await;
    indexed.set("a", b"1", None).await.expect("set");
    let plain = open(&url, &namespace, "").await;
    plain
        .set("b", b"2", Some(Duration::from_secs(60)))
        .await
        .expect("set");
    plain.delete("a").await.expect("delete");
    assert_eq!(indexed.list("").await.expect("list"), vec!["b".to_owned()]);
    let mut conn = raw(&url).await;
    assert_eq!(index_sizes(&mut conn, &namespace).await, (1, 1));
    indexed.clear().await.expect("clear");
}

/// On a cluster the index keeps the namespace in one slot under other key
/// names, so a namespace written without it is refused, with the way out.
#[tokio::test]
async fn a_cluster_namespace_written_without_the_index_is_refused_with_a_way_out() {
    let Some(urls) = server("KVS_TEST_REDIS_CLUSTER_URL", "redis cluster (indexed)") else {
        return;
    };
    let url = urls.split(',').next().unwrap_or_default().trim().to_owned();
    let namespace = unique_namespace();
    let plain = open(&url, &namespace, "").await;
    plain.set("k", b"v", None).await.expect("set");
    let config = Config::from_url(&with_query(
        &url,
        &format!("namespace={namespace}&index=true"),
    ))
    .expect("store URL");
    let Err(refused) = kvs::open(&config).await else {
        panic!("index=true on a namespace written without it was accepted");
    };
    let message = refused.to_string();
    assert!(
        message.contains("kvs copy") && !message.contains('\n'),
        "{message}"
    );
    plain.clear().await.expect("clear");
}

mod model {
    //! Indexed listing against `SCAN`-based listing of the same keys: on a
    //! single server both read the same keys, so a store opened before the
    //! index exists lists by `SCAN` what the indexed store lists from the
    //! index.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Option<u64>),
        Delete(u8),
        DeleteMany(Vec<u8>),
        SetMany(Vec<u8>, Option<u64>),
        IfAbsent(u8, Option<u64>),
        Swap(u8),
        Increment(u8),
        Expire(u8, u64),
        Persist(u8),
        Touch(u8, u64),
        DeletePrefix(u8),
        /// Wait until every short TTL given so far has run out.
        Wait,
    }

    /// The database of the test server the model test uses.
    const MODEL_DB: u32 = 9;

    async fn open_in(url: &str, db: u32, namespace: &str, index: bool) -> Arc<dyn Store> {
        let mut config = Config::from_url(url).expect("store URL");
        config.redis.db = db;
        config.redis.index = index;
        config.namespace = namespace.to_owned();
        kvs::open(&config).await.expect("open")
    }

    /// Short TTLs run out within the test; long ones never do.
    const SHORT_MS: u64 = 10;
    const LONG_MS: u64 = 600_000;

    fn key(k: u8) -> String {
        // Few keys, in a few prefixes, so that operations meet.
        format!("{}{}", ["a", "ab", "b:"][usize::from(k % 3)], k / 3)
    }

    fn ttl() -> impl Strategy<Value = Option<u64>> {
        prop_oneof![Just(None), Just(Some(SHORT_MS)), Just(Some(LONG_MS))]
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0u8..12;
        prop_oneof![
            4 => (k.clone(), ttl()).prop_map(|(k, t)| Op::Set(k, t)),
            2 => k.clone().prop_map(Op::Delete),
            1 => proptest::collection::vec(k.clone(), 0..4).prop_map(Op::DeleteMany),
            1 => (proptest::collection::vec(k.clone(), 0..4), ttl()).prop_map(|(ks, t)| Op::SetMany(ks, t)),
            1 => (k.clone(), ttl()).prop_map(|(k, t)| Op::IfAbsent(k, t)),
            1 => k.clone().prop_map(Op::Swap),
            1 => k.clone().prop_map(Op::Increment),
            1 => (k.clone(), prop_oneof![Just(SHORT_MS), Just(LONG_MS)]).prop_map(|(k, t)| Op::Expire(k, t)),
            1 => k.clone().prop_map(Op::Persist),
            1 => (k.clone(), prop_oneof![Just(SHORT_MS), Just(LONG_MS)]).prop_map(|(k, t)| Op::Touch(k, t)),
            1 => (0u8..4).prop_map(Op::DeletePrefix),
            1 => Just(Op::Wait),
        ]
    }

    fn ms(t: Option<u64>) -> Option<Duration> {
        t.map(Duration::from_millis)
    }

    /// Applies `op`; returns whether it may have left a short TTL running.
    async fn apply(store: &dyn Store, op: &Op) -> bool {
        let short = |t: &Option<u64>| *t == Some(SHORT_MS);
        match op {
            Op::Set(k, t) => {
                store.set(&key(*k), b"1", ms(*t)).await.expect("set");
                short(t)
            }
            Op::Delete(k) => {
                store.delete(&key(*k)).await.expect("delete");
                false
            }
            Op::DeleteMany(ks) => {
                let names: Vec<String> = ks.iter().map(|k| key(*k)).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                store.delete_many(&refs).await.expect("delete_many");
                false
            }
            Op::SetMany(ks, t) => {
                let names: Vec<String> = ks.iter().map(|k| key(*k)).collect();
                let entries: Vec<(&str, &[u8])> =
                    names.iter().map(|k| (k.as_str(), &b"2"[..])).collect();
                store.set_many(&entries, ms(*t)).await.expect("set_many");
                short(t)
            }
            Op::IfAbsent(k, t) => {
                store
                    .set_if_absent(&key(*k), b"3", ms(*t))
                    .await
                    .expect("set_if_absent");
                short(t)
            }
            Op::Swap(k) => {
                store
                    .compare_and_swap(&key(*k), Some(b"1"), b"4", None)
                    .await
                    .expect("compare_and_swap");
                false
            }
            Op::Increment(k) => {
                // Values that are not counters are refused; that is fine here.
                let _ = store.increment(&key(*k), 1).await;
                false
            }
            Op::Expire(k, t) => {
                let _ = store.expire(&key(*k), Duration::from_millis(*t)).await;
                *t == SHORT_MS
            }
            Op::Persist(k) => {
                let _ = store.persist(&key(*k)).await;
                false
            }
            Op::Touch(k, t) => {
                let _ = store
                    .get_and_touch(&key(*k), Duration::from_millis(*t))
                    .await;
                *t == SHORT_MS
            }
            Op::DeletePrefix(p) => {
                store
                    .delete_prefix(["", "a", "ab", "b:"][usize::from(*p)])
                    .await
                    .expect("delete_prefix");
                false
            }
            Op::Wait => {
                tokio::time::sleep(Duration::from_millis(SHORT_MS * 5)).await;
                false
            }
        }
    }

    /// Every listing of the two stores agrees.
    async fn agree(indexed: &dyn Store, scanned: &dyn Store, after: &[Op]) {
        for prefix in ["", "a", "ab", "b:", "c"] {
            let by_index = indexed.list(prefix).await.expect("indexed list");
            let by_scan = scanned.list(prefix).await.expect("scan list");
            assert_eq!(by_index, by_scan, "list({prefix:?}) after {after:?}");
            assert_eq!(
                indexed.count(prefix).await.expect("count"),
                by_scan.len(),
                "count({prefix:?}) after {after:?}"
            );
            let mut paged = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let (page, next) = indexed
                    .list_page(prefix, cursor.as_deref(), 2)
                    .await
                    .expect("list_page");
                paged.extend(page);
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(paged, by_scan, "pages of {prefix:?} after {after:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

        #[test]
        fn indexed_listing_matches_scan_listing(ops in proptest::collection::vec(op(), 1..24)) {
            let Some(url) = standalone_url() else { return Ok(()) };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let namespace = unique_namespace();
                // Opened first, so it lists by SCAN; in a database of its
                // own, so that each SCAN walks only this test's keys.
                let scanned = open_in(&url, MODEL_DB, &namespace, false).await;
                let indexed = open_in(&url, MODEL_DB, &namespace, true).await;
                let mut short_running = false;
                for (i, op) in ops.iter().enumerate() {
                    short_running |= apply(indexed.as_ref(), op).await;
                    if short_running {
                        // A key on the edge of expiring could be seen by one
                        // listing and not the other: compare once it is gone.
                        tokio::time::sleep(Duration::from_millis(SHORT_MS * 5)).await;
                        short_running = false;
                    }
                    agree(indexed.as_ref(), scanned.as_ref(), &ops[..=i]).await;
                }
                indexed.clear().await.expect("clear");
            });
        }
    }
}

mod processes {
    //! Two processes write and list one indexed namespace at once.

    use super::*;

    const KEYS: usize = 600;

    /// Not a test of its own: one writer, active only with
    /// `KVS_INDEX_WRITER` set. It writes its keys, deletes every third,
    /// and lists after each step: the listing is sorted, and holds every
    /// key of its own that it has written and not deleted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn index_writer_child() {
        let Ok(url) = std::env::var("KVS_INDEX_WRITER") else {
            return;
        };
        let me = std::env::var("KVS_INDEX_ME").expect("KVS_INDEX_ME");
        let store = kvs::open(&Config::from_url(&url).expect("url"))
            .await
            .expect("open");
        let mut mine = BTreeSet::new();
        for i in 0..KEYS {
            let key = format!("w{me}:{i:04}");
            store.set(&key, b"v", None).await.expect("set");
            mine.insert(key);
            if i % 3 == 2 {
                let gone = format!("w{me}:{:04}", i - 1);
                store.delete(&gone).await.expect("delete");
                mine.remove(&gone);
            }
            if i % 20 == 0 {
                let listed = store.list("").await.expect("list");
                assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
                let own: BTreeSet<String> = listed
                    .into_iter()
                    .filter(|k| k.starts_with(&format!("w{me}:")))
                    .collect();
                assert_eq!(own, mine, "a listing holds exactly my live keys");
            }
        }
        store.close().await.expect("close");
    }

    #[tokio::test]
    async fn two_processes_write_and_list_one_index() {
        let Some(url) = standalone_url() else { return };
        let namespace = unique_namespace();
        let url = with_query(&url, &format!("namespace={namespace}&index=true"));
        let exe = std::env::current_exe().expect("test binary");
        let writers: Vec<_> = (0..2)
            .map(|me| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "processes::index_writer_child",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("KVS_INDEX_WRITER", &url)
                    .env("KVS_INDEX_ME", me.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn a writer")
            })
            .collect();
        for mut writer in writers {
            assert!(writer.wait().expect("writer").success(), "a writer failed");
        }
        let store = kvs::open(&Config::from_url(&url).expect("url"))
            .await
            .expect("open");
        let per_writer = KEYS - KEYS / 3;
        assert_eq!(store.count("").await.expect("count"), 2 * per_writer);
        assert_eq!(store.count("w1:").await.expect("count"), per_writer);
        let mut conn = raw(&standalone_url().expect("url")).await;
        assert_eq!(
            index_sizes(&mut conn, &namespace).await,
            ((2 * per_writer) as u64, 0)
        );
        store.clear().await.expect("clear");
    }
}
