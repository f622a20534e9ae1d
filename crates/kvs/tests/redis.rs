//! The conformance suite on a real Redis server: the one `scripts/test`
//! starts on 127.0.0.1:6390 (never the machine's own 6379), named by
//! `KVS_TEST_REDIS_URL`.

use kvs::testkit::{Capabilities, ConfigHarness};
use kvs::Store;

/// Stores opened from the server's URL through `kvs::open`, in namespaces
/// of this run; Redis keeps time itself, so the cases wait in real time.
async fn harness() -> Option<ConfigHarness> {
    ConfigHarness::from_env("KVS_TEST_REDIS_URL", "redis", capabilities())
}

fn capabilities() -> Capabilities {
    let mut caps = Capabilities::new();
    caps.shared_namespaces = true;
    caps.persistent = true;
    caps.manual_clock = false;
    caps
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 2,000 mixed operations on the test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_2000_operations() {
    let Some(h) = harness().await else { return };
    kvs::testkit::cases::load(&h, 64, 2_000).await;
}

/// The documented key form: what kvs writes, `redis-cli GET <namespace>:<key>`
/// reads, and what `redis-cli SET` writes there, kvs reads.
#[tokio::test]
async fn redis_cli_reads_and_writes_the_documented_key_form() {
    let Some(h) = harness().await else { return };
    let cli = std::process::Command::new("redis-cli")
        .arg("--version")
        .output();
    if !cli.is_ok_and(|o| o.status.success()) {
        assert!(
            !kvs::testkit::env::require_all(),
            "redis-cli is missing; scripts/test installs it"
        );
        eprintln!("!!!!! SKIPPED: redis-cli interop — redis-cli is not installed !!!!!");
        return;
    }
    let namespace = format!("{}interop", kvs::testkit::unique_namespace());
    let store = kvs::RedisStore::open(&namespace, h.config().redis.clone())
        .await
        .expect("open");
    store.set("user:1", b"ada", None).await.expect("set");
    let (host, port) = h.config().redis.addr.rsplit_once(':').expect("host:port");
    let redis_cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args([
                "-h",
                host,
                "-p",
                port,
                "-n",
                &h.config().redis.db.to_string(),
            ])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    let key = kvs::raw::encode_key(&namespace, "user:1");
    assert_eq!(key, format!("{namespace}:user:1"), "the documented form");
    assert_eq!(redis_cli(&["GET", &key]), "ada");
    redis_cli(&[
        "SET",
        &kvs::raw::encode_key(&namespace, "from-cli"),
        "hello",
    ]);
    assert_eq!(&store.get("from-cli").await.expect("get")[..], b"hello");
    assert_eq!(
        store.list("").await.expect("list"),
        vec!["from-cli", "user:1"]
    );
    store.close().await.expect("close");
}
