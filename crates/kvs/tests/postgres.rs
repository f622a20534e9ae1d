//! The conformance suite on a real PostgreSQL server: the one
//! `scripts/test` starts on 127.0.0.1:5439 (never the machine's own 5432),
//! named by `KVS_TEST_POSTGRES_URL`, opened through `kvs::open` and
//! `kvs::open_documents`.

use kvs::testkit::{Capabilities, ConfigHarness};
use kvs::Store;

/// Stores opened from the server's URL, in namespaces of this run. The
/// backend reads time from the store's clock, never the server's, so the
/// cases run on a manual clock.
async fn harness() -> Option<ConfigHarness> {
    ConfigHarness::from_env("KVS_TEST_POSTGRES_URL", "postgres", capabilities())
}

fn capabilities() -> Capabilities {
    let mut caps = Capabilities::new();
    caps.shared_namespaces = true;
    caps.persistent = true;
    caps.manual_clock = true;
    caps
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 2,000 mixed operations on the test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_2000_operations() {
    let Some(h) = harness().await else { return };
    kvs::testkit::cases::load(&h, 64, 2_000).await;
}

/// `psql` reads what kvs wrote: one row per key in the documented table,
/// the key and value as bytes, the deadline in milliseconds.
#[tokio::test]
async fn psql_reads_our_table() {
    let Ok(url) = std::env::var("KVS_TEST_POSTGRES_URL") else {
        assert!(
            !kvs::testkit::env::require_all(),
            "KVS_TEST_POSTGRES_URL is not set"
        );
        eprintln!("!!!!! SKIPPED: psql interop — KVS_TEST_POSTGRES_URL is not set !!!!!");
        return;
    };
    let namespace = format!("{}psql", kvs::testkit::unique_namespace());
    let mut config = kvs::Config::from_url(&url).expect("url");
    config.namespace = namespace.clone();
    let store = kvs::open(&config).await.expect("open");
    store.set("user:42", b"ada", None).await.expect("set");
    let query = format!(
        "SELECT convert_from(key, 'UTF8') || '=' || convert_from(value, 'UTF8') \
         FROM kvs WHERE namespace = '{namespace}' ORDER BY key"
    );
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-At", "-c", &query])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "user:42=ada");
    store.clear().await.expect("clear");
}
