//! `close` releases every connection a Redis store holds: the pool's, and
//! on a cluster the one to each master that listing uses. Counted with
//! `CLIENT LIST` on the test script's own servers (standalone and
//! cluster). This binary holds one test, and cargo runs test binaries one
//! at a time, so no other test's connections come and go meanwhile.

use kvs::testkit::env;
use kvs::{Config, Store};
use std::time::{Duration, Instant};

/// Connections from clients on the server at `node` (`host:port`), ours
/// (one, the counting one) included.
async fn clients(counter: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(counter)
        .await
        .expect("CLIENT LIST");
    list.lines().filter(|l| !l.trim().is_empty()).count()
}

async fn counters(nodes: &[&str]) -> Vec<redis::aio::MultiplexedConnection> {
    let mut out = Vec::new();
    for node in nodes {
        let client = redis::Client::open(format!("redis://{node}")).expect("client");
        out.push(
            client
                .get_multiplexed_async_connection()
                .await
                .expect("connect to count clients"),
        );
    }
    out
}

async fn counts(counters: &mut [redis::aio::MultiplexedConnection]) -> Vec<usize> {
    let mut out = Vec::new();
    for c in counters {
        out.push(clients(c).await);
    }
    out
}

/// Opens a store from `url` with a pool of 3, uses it, closes it, and
/// checks that each node of `nodes` is back to its connections of before
/// (dropped sockets are noticed by the server within moments; 10 s is the
/// margin).
async fn close_releases_every_connection(url: &str, nodes: &[&str]) {
    let mut counters = counters(nodes).await;
    let before = counts(&mut counters).await;
    let mut config = Config::from_url(url).expect("store URL");
    config.namespace = format!("{}conns", kvs::testkit::unique_namespace());
    config.redis.pool_size = 3;
    let store = kvs::open(&config).await.expect("open");
    store.set("k", b"v", None).await.expect("set");
    assert_eq!(store.list("").await.expect("list"), vec!["k"]);
    store.clear().await.expect("clear");
    let open = counts(&mut counters).await;
    assert!(
        open.iter().zip(&before).any(|(o, b)| o > b),
        "an open store holds connections: before {before:?}, open {open:?}"
    );
    store.close().await.expect("close");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = counts(&mut counters).await;
        if after == before {
            eprintln!("{url}: clients per node before {before:?}, open {open:?}, closed {after:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: close left connections open: before {before:?}, open {open:?}, closed {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The store itself is still alive (not dropped): only close released them.
    assert!(matches!(store.get("k").await, Err(kvs::Error::Closed)));
}

#[tokio::test]
async fn close_releases_the_pool_and_the_masters() {
    let Some(single) = env::server("KVS_TEST_REDIS_URL", "redis") else {
        return;
    };
    let single_node = single
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    close_releases_every_connection(&single, &[&single_node]).await;

    let Some(cluster) = env::server("KVS_TEST_REDIS_CLUSTER_URL", "redis cluster") else {
        return;
    };
    let seed = cluster
        .trim_start_matches("redis://")
        .split(['?', '/'])
        .next()
        .unwrap_or_default()
        .to_owned();
    // Every master of the cluster, from the seed's view of it.
    let client = redis::Client::open(format!("redis://{seed}")).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the cluster seed");
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await
        .expect("CLUSTER NODES");
    drop(conn);
    let masters: Vec<String> = nodes
        .lines()
        .filter(|l| l.contains("master"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|addr| addr.split('@').next().unwrap_or(addr).to_owned())
        .collect();
    assert!(masters.len() >= 3, "{nodes}");
    let masters: Vec<&str> = masters.iter().map(String::as_str).collect();
    close_releases_every_connection(&cluster, &masters).await;
}
