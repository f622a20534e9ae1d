//! Atomic operations are atomic across processes sharing one store (a
//! SQLite file, a PostgreSQL table): two child processes (this test
//! binary, re-run on `racer_child`) race `increment` and `set_if_absent`
//! on the same keys; no update is lost and exactly one lock is taken.
//!
//! (LevelDB allows one process per database, and a memory store belongs to
//! one process, so for them atomicity within the process — tested by the
//! conformance suite — is all there is.)

use kvs::Store;
use std::process::{Command, Stdio};

const INCREMENTS: i64 = 2_000;

/// Opens the store `source` describes: a store URL after `url:`, or YAML.
async fn open(source: &str) -> std::sync::Arc<dyn Store> {
    let config = match source.strip_prefix("url:") {
        Some(url) => kvs::Config::from_url(url),
        None => kvs::Config::from_yaml(source),
    }
    .expect("config");
    kvs::open(&config).await.expect("open")
}

fn sqlite(path: &str) -> String {
    format!("type: sqlite\nnamespace: race\npath: {path:?}")
}

/// Not a test of its own: the racing side, active only with `KVS_RACE_DB` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racer_child() {
    let Ok(source) = std::env::var("KVS_RACE_STORE") else {
        return;
    };
    let me = std::env::var("KVS_RACE_ME").unwrap_or_default();
    let store = open(&source).await;
    for _ in 0..INCREMENTS {
        store.increment("counter", 1).await.expect("increment");
    }
    if store
        .set_if_absent("lock", me.as_bytes(), None)
        .await
        .expect("set_if_absent")
    {
        println!("\nKVS-RACE-WON");
    }
    store.close().await.expect("close");
}

#[tokio::test]
async fn increments_and_locks_race_safely_between_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("race.db").display().to_string();
    // Create the database first so that both racers only open it.
    let source = sqlite(&path);
    open(&source).await.close().await.expect("close");
    race(&source).await;
}

#[cfg(all(feature = "postgres", feature = "testkit"))]
#[tokio::test]
async fn postgres_increments_and_locks_race_safely_between_processes() {
    let Some(url) = kvs::testkit::env::server("KVS_TEST_POSTGRES_URL", "postgres") else {
        return;
    };
    let namespace = kvs::testkit::unique_namespace();
    let url = kvs::testkit::env::with_query(&url, &format!("namespace={namespace}"));
    race(&format!("url:{url}")).await;
}

/// Two racers on the store `source` describes, then the count.
async fn race(source: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let racers: Vec<_> = (0..2)
        .map(|me| {
            Command::new(&exe)
                .args(["--exact", "racer_child", "--nocapture", "--test-threads=1"])
                .env("KVS_RACE_STORE", source)
                .env("KVS_RACE_ME", me.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a racer")
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        let out = racer.wait_with_output().expect("racer");
        assert!(out.status.success(), "a racer failed");
        winners += String::from_utf8_lossy(&out.stdout)
            .matches("KVS-RACE-WON")
            .count();
    }
    let store = open(source).await;
    let counter = store.get("counter").await.expect("counter");
    assert_eq!(
        &counter[..],
        (2 * INCREMENTS).to_string().as_bytes(),
        "an increment was lost between processes"
    );
    assert_eq!(winners, 1, "exactly one process may take the lock");
    store.close().await.expect("close");
}
