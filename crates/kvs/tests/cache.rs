//! The cache across processes, as users run it: four processes (this test
//! binary, re-run on `cache_child`) share one store through `kvs::open`,
//! each with 100 tasks asking for the same missing key at once; the
//! loader, which counts its runs in the store itself, runs once in all.
//! And a process killed with SIGKILL while it holds the lease: another
//! process takes the load over once the lease's TTL has passed.
//!
//! On one SQLite file and on the test script's Redis (skipped with a loud
//! line without it, a failure in CI).

use kvs::cache::{Cache, Lease};
use kvs::{Config, Store};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROCESSES: usize = 4;
const TASKS: usize = 100;

/// How a child finds the store: the parent's configuration as a store URL
/// or YAML, and the namespace.
fn config_from_env() -> Option<Config> {
    let source = std::env::var("KVS_CACHE_CONFIG").ok()?;
    let namespace = std::env::var("KVS_CACHE_NAMESPACE").expect("namespace");
    Some(config_from(&source, &namespace))
}

fn cache(store: Arc<dyn Store>, lease_ttl: Duration) -> Cache {
    Cache::builder(store)
        .distributed(Lease {
            ttl: lease_ttl,
            ..Lease::default()
        })
        .build()
}

/// Not a test of its own: one process of the race, active only with
/// `KVS_CACHE_CONFIG` set. `KVS_CACHE_MODE=hold` loads forever instead
/// (the parent kills it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_child() {
    let Some(config) = config_from_env() else {
        return;
    };
    let store = kvs::open(&config).await.expect("open");
    let hold = std::env::var("KVS_CACHE_MODE").is_ok_and(|m| m == "hold");
    let cache = cache(
        Arc::clone(&store),
        Duration::from_secs(if hold { 2 } else { 30 }),
    );
    if hold {
        let _ = cache
            .get_or_set("report", None, || async {
                println!("KVS-CACHE-LOADING");
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, std::io::Error>("never")
            })
            .await;
        return;
    }
    // Start together: every process waits for the parent's go.
    while !store.exists("go").await.expect("exists") {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, store) = (cache.clone(), Arc::clone(&store));
            tokio::spawn(async move {
                cache
                    .get_or_set("report", None, move || async move {
                        store.increment("loads", 1).await?;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok::<_, kvs::Error>("the report")
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        let value = task.await.expect("task").expect("get_or_set");
        assert_eq!(&value[..], b"the report");
    }
    println!("\nKVS-CACHE-OK");
}

fn child(config: &str, namespace: &str, mode: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "cache_child", "--nocapture", "--test-threads=1"])
        .env("KVS_CACHE_CONFIG", config)
        .env("KVS_CACHE_NAMESPACE", namespace)
        .env("KVS_CACHE_MODE", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

async fn one_load_across_processes(config: &str, namespace: &str) {
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| child(config, namespace, "race").spawn().expect("spawn"))
        .collect();
    let store = kvs::open(&config_from(config, namespace))
        .await
        .expect("open");
    // Give every child time to open its store before the go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.set("go", b"", None).await.expect("go");
    for child in children {
        let out = child.wait_with_output().expect("child");
        assert!(out.status.success(), "a child failed");
        assert!(String::from_utf8_lossy(&out.stdout).contains("KVS-CACHE-OK"));
    }
    let loads = store.get("loads").await.expect("the loader ran");
    assert_eq!(
        &loads[..],
        b"1",
        "{PROCESSES} processes × {TASKS} tasks: one load"
    );
    store.clear().await.expect("clear");
}

async fn a_killed_holder_is_taken_over(config: &str, namespace: &str) {
    let mut holder = child(config, namespace, "hold").spawn().expect("spawn");
    let stdout = holder.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("KVS-CACHE-LOADING")),
        "the holder never started loading"
    );
    let killed = Instant::now();
    holder.kill().expect("SIGKILL");
    holder.wait().expect("reaped");
    let store = kvs::open(&config_from(config, namespace))
        .await
        .expect("open");
    let value = cache(Arc::clone(&store), Duration::from_secs(2))
        .get_or_set("report", None, || async {
            Ok::<_, std::io::Error>("taken over")
        })
        .await
        .expect("another process loads");
    assert_eq!(&value[..], b"taken over");
    // The holder's lease (2 s, renewed until the kill) had to run out.
    assert!(
        killed.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        killed.elapsed()
    );
    store.clear().await.expect("clear");
}

fn config_from(source: &str, namespace: &str) -> Config {
    let mut config = match source.strip_prefix("url:") {
        Some(url) => Config::from_url(url),
        None => Config::from_yaml(source),
    }
    .expect("configuration");
    config.namespace = namespace.to_owned();
    config
}

/// A SQLite store in `dir`, created here so the children only open it.
async fn sqlite_config(dir: &tempfile::TempDir) -> String {
    let config = format!(
        "type: sqlite\nsqlite: {{ path: \"{}/cache.db\" }}",
        dir.path().display()
    );
    kvs::open(&config_from(&config, "x"))
        .await
        .expect("create")
        .close()
        .await
        .expect("close");
    config
}

fn redis_config() -> Option<String> {
    kvs::testkit::env::server("KVS_TEST_REDIS_URL", "redis").map(|url| format!("url:{url}"))
}

fn namespace(tag: &str) -> String {
    format!("{}{tag}", kvs::testkit::unique_namespace())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_load_across_four_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = sqlite_config(&dir).await;
    one_load_across_processes(&config, &namespace("race")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_killed_lease_holder_is_taken_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = sqlite_config(&dir).await;
    a_killed_holder_is_taken_over(&config, &namespace("kill")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_one_load_across_four_processes() {
    let Some(config) = redis_config() else { return };
    one_load_across_processes(&config, &namespace("race")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_killed_lease_holder_is_taken_over() {
    let Some(config) = redis_config() else { return };
    a_killed_holder_is_taken_over(&config, &namespace("kill")).await;
}
