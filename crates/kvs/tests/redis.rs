//! The conformance suite on a real Redis server: the one `scripts/test`
//! starts on 127.0.0.1:6390 (never the machine's own 6379), named by
//! `KVS_TEST_REDIS_URL`.

use kvs::testkit::redis::RedisHarness;
use kvs::testkit::Harness;
use kvs::Store;
use std::sync::Arc;

async fn harness() -> Option<RedisHarness> {
    RedisHarness::from_env("KVS_TEST_REDIS_URL", "redis")
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 2,000 mixed operations on the test server, no errors,
/// and each task's keys end as its own model says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_2000_operations() {
    let Some(h) = harness().await else { return };
    let store = h.open("load").await.expect("open");
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut model = std::collections::BTreeMap::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
            for i in 0..2_000u64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = format!("t{t:02}:{}", seed % 32);
                match seed % 5 {
                    0 | 1 => {
                        let value = format!("{t}-{i}");
                        store.set(&key, value.as_bytes(), None).await.expect("set");
                        model.insert(key, value);
                    }
                    2 => {
                        store.delete(&key).await.expect("delete");
                        model.remove(&key);
                    }
                    _ => {
                        let got = store
                            .get(&key)
                            .await
                            .ok()
                            .map(|v| String::from_utf8_lossy(&v).into_owned());
                        assert_eq!(got.as_ref(), model.get(&key), "task {t} read {key}");
                    }
                }
            }
            model
        }));
    }
    let mut want = Vec::new();
    for task in tasks {
        want.extend(task.await.expect("task").into_keys());
    }
    want.sort();
    assert_eq!(store.list("t").await.expect("list"), want);
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
    let store = kvs::RedisStore::open(&namespace, h.config().clone())
        .await
        .expect("open");
    store.set("user:1", b"ada", None).await.expect("set");
    let (host, port) = h.config().addr.rsplit_once(':').expect("host:port");
    let redis_cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", host, "-p", port, "-n", &h.config().db.to_string()])
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
    let key = kvs::key::encode_key(&namespace, "user:1");
    assert_eq!(key, format!("{namespace}:user:1"), "the documented form");
    assert_eq!(redis_cli(&["GET", &key]), "ada");
    redis_cli(&[
        "SET",
        &kvs::key::encode_key(&namespace, "from-cli"),
        "hello",
    ]);
    assert_eq!(&store.get("from-cli").await.expect("get")[..], b"hello");
    assert_eq!(
        store.list("").await.expect("list"),
        vec!["from-cli", "user:1"]
    );
    store.close().await.expect("close");
}
