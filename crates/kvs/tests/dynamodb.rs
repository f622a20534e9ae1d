//! The conformance suite on DynamoDB: the emulator (`moto_server`) that
//! `scripts/test` starts on loopback ports, named by
//! `KVS_TEST_DYNAMODB_ENDPOINT`. Expiry is computed by kvs and checked on
//! every read, so the stores read an injected clock.
//!
//! moto answers on one core, so the script starts two and the variable
//! lists both, comma-separated; each namespace is served by one of them,
//! chosen by its name, so every store of a namespace meets the same data
//! (see `ConfigHarness::from_urls`).

use kvs::testkit::{env, Capabilities, ConfigHarness};

/// Stores opened from a `dynamodb://` URL per emulator through
/// `kvs::open`, in namespaces of this run, on an injected clock.
async fn harness() -> Option<ConfigHarness> {
    let endpoints = env::server("KVS_TEST_DYNAMODB_ENDPOINT", "dynamodb")?;
    // A table per harness, so per case: moto answers a Query by walking
    // every item of the table, so one table shared by the whole run made
    // each case slower than the one before it.
    let table = format!(
        "kvs-test-{}",
        kvs::testkit::unique_namespace().trim_end_matches('-')
    );
    let urls: Vec<String> = endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|endpoint| {
            format!("dynamodb://{table}?endpoint={endpoint}&region=us-east-1&create_table=true")
        })
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut caps = Capabilities::new();
    caps.shared_namespaces = true;
    caps.persistent = true;
    caps.max_value_size = Some(400 * 1024);
    // moto serves ~280 calls a second per core: 64 tasks x 500 took 116 s
    // of a CI run; x 100 checks the same isolation.
    caps.concurrent_ops = 100;
    Some(ConfigHarness::from_urls(&urls, caps))
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 300 mixed operations on the emulator (KVS_TEST_LOAD_OPS
/// for more: 2,000 took 179 s of a CI run, against moto, which measures
/// nothing of DynamoDB's own speed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_300_operations() {
    let Some(h) = harness().await else { return };
    let operations = std::env::var("KVS_TEST_LOAD_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    kvs::testkit::cases::load(&h, 64, operations).await;
}

/// An endpoint nobody listens on is a temporary failure (the service may
/// come up). Run with the emulators' environment, whose throwaway
/// credentials get the request as far as the connection.
#[tokio::test]
async fn an_unreachable_endpoint_is_a_temporary_error() {
    if env::server("KVS_TEST_DYNAMODB_ENDPOINT", "dynamodb").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("dynamodb://kvs-test?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let mut config = kvs::Config::from_url(&url).expect("url");
    config.namespace = "unreachable".into();
    let store = kvs::open(&config).await.expect("open (no request yet)");
    let err = store.get("k").await.unwrap_err();
    assert!(err.is_temporary(), "nobody listens: {err}");
}
