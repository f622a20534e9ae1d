//! Durability under `kill -9`: a child process writes with durable settings
//! and prints each acknowledged key; the parent kills it at a random moment,
//! reopens the store, and checks that every acknowledged key is there.
//! Twenty kills per backend.
//!
//! The child is this same test binary, re-run on the `crash_writer_child`
//! entry below with `KVS_CRASH_CHILD` set.

use kvs::Store;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const KILLS: u64 = 20;

/// Opens the durable store named by `spec` (`backend:path`, or `url:` and
/// a store URL for a server's store).
async fn open(spec: &str) -> Arc<dyn Store> {
    if let Some(url) = spec.strip_prefix("url:") {
        let config = kvs::Config::from_url(url).expect("store URL");
        return kvs::open(&config).await.expect("open");
    }
    let (backend, path) = spec.split_once(':').expect("backend:path");
    // `leveldb-nosync` is LevelDB without `sync_writes`, for comparison.
    let (kind, sync) = match backend {
        "sqlite" => ("sqlite", true),
        "leveldb" => ("leveldb", true),
        "leveldb-nosync" => ("leveldb", false),
        other => panic!("no crash test for {other}"),
    };
    let config = format!(
        "type: {kind}\nnamespace: crash\n{kind}: {{ path: {path:?}, sync_writes: {sync} }}"
    );
    let config = kvs::Config::from_yaml(&config).expect("config");
    kvs::open(&config).await.expect("open")
}

/// Not a test of its own: the child side of the crash tests, which does
/// nothing unless `KVS_CRASH_CHILD` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_writer_child() {
    let Ok(spec) = std::env::var("KVS_CRASH_CHILD") else {
        return;
    };
    let round = std::env::var("KVS_CRASH_ROUND").unwrap_or_default();
    let store = open(&spec).await;
    // Several writers at once, so that group commit is under test too.
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let store = Arc::clone(&store);
        let round = round.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("r{round}-w{writer}-{i:06}");
                store.set(&key, key.as_bytes(), None).await.expect("set");
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ack {key}");
                let _ = out.flush();
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

fn crash_rounds(spec: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut total = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KVS_CRASH_CHILD", spec)
            .env("KVS_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("stdout");
        let (acks, acked_rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(key) = line.strip_prefix("ack ") {
                    if acks.send(key.to_owned()).is_err() {
                        return;
                    }
                }
            }
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Wait for the writer to be writing (opening may take a while on a
        // loaded machine: a fresh LevelDB log compacts the old one first),
        // let it write for a random while, then kill it mid-stream.
        let first = acked_rx.recv_timeout(Duration::from_secs(60));
        assert!(
            first.is_ok(),
            "round {round}: the writer acknowledged nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50 + seed % 400));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        reader.join().expect("reader");
        let acked: Vec<String> = first.into_iter().chain(acked_rx.try_iter()).collect();
        rt.block_on(async {
            let store = open(spec).await;
            for key in &acked {
                match store.get(key).await {
                    Ok(value) => assert_eq!(
                        &value[..],
                        key.as_bytes(),
                        "round {round}: {key} has a wrong value"
                    ),
                    Err(e) => {
                        panic!("round {round}: acknowledged key {key} is lost after kill -9: {e}")
                    }
                }
            }
            store.close().await.expect("close");
        });
        total += acked.len();
    }
    eprintln!("{spec}: {KILLS} kills, {total} acknowledged writes, none lost");
}

fn temp_spec(backend: &str, dir: &Path, file: &str) -> String {
    format!("{backend}:{}", dir.join(file).display())
}

#[test]
fn sqlite_keeps_every_acknowledged_write_through_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    crash_rounds(&temp_spec("sqlite", dir.path(), "crash.db"));
}

/// Not a test of its own: writes `KVS_FSYNC_WRITES` keys one after another
/// to the store named by `KVS_FSYNC_CHILD`, for the strace tests below.
#[tokio::test]
async fn fsync_writer_child() {
    let Ok(spec) = std::env::var("KVS_FSYNC_CHILD") else {
        return;
    };
    let writes: usize = std::env::var("KVS_FSYNC_WRITES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let store = open(&spec).await;
    for i in 0..writes {
        store.set(&format!("k{i}"), b"v", None).await.expect("set");
    }
    store.close().await.expect("close");
}

/// How many `fsync`/`fdatasync` calls the child makes for `writes`
/// sequential durable writes, traced by strace; `None` if strace is missing.
fn traced_syncs(spec: &str, writes: usize, dir: &Path) -> Option<usize> {
    let strace_ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !strace_ok {
        assert!(
            !kvs::testkit::env::require_all(),
            "strace is missing; scripts/test installs it"
        );
        eprintln!("!!!!! SKIPPED: fsync proof — strace is not installed !!!!!");
        return None;
    }
    let exe = std::env::current_exe().expect("test binary");
    let log = dir.join("strace.log");
    let status = Command::new("strace")
        .args(["-f", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(&exe)
        .args(["--exact", "fsync_writer_child", "--test-threads=1"])
        .env("KVS_FSYNC_CHILD", spec)
        .env("KVS_FSYNC_WRITES", writes.to_string())
        .stdout(Stdio::null())
        .status()
        .expect("run strace");
    assert!(status.success(), "the traced writer failed");
    let trace = std::fs::read_to_string(&log).expect("strace log");
    Some(
        trace
            .lines()
            .filter(|l| (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains("= 0"))
            .count(),
    )
}

#[test]
fn sqlite_durable_writes_call_fsync() {
    let dir = tempfile::tempdir().expect("temp dir");
    const WRITES: usize = 20;
    let durable = temp_spec("sqlite", dir.path(), "durable.db");
    let Some(syncs) = traced_syncs(&durable, WRITES, dir.path()) else {
        return;
    };
    eprintln!(
        "sqlite, sync_writes: true — {WRITES} sequential writes made {syncs} fsync/fdatasync calls"
    );
    assert!(
        syncs >= WRITES,
        "each durable commit must reach the disk: {syncs} syncs for {WRITES} writes"
    );
}

/// A killed client loses nothing PostgreSQL acknowledged: each `set` is a
/// committed statement (`synchronous_commit` is on by default).
#[cfg(all(feature = "postgres", feature = "testkit"))]
#[test]
fn postgres_keeps_every_acknowledged_write_through_kill_9() {
    let Some(url) = kvs::testkit::env::server("KVS_TEST_POSTGRES_URL", "postgres") else {
        return;
    };
    let namespace = kvs::testkit::unique_namespace();
    let url = kvs::testkit::env::with_query(&url, &format!("namespace={namespace}"));
    crash_rounds(&format!("url:{url}"));
}

#[test]
fn leveldb_keeps_every_acknowledged_write_through_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    crash_rounds(&temp_spec("leveldb", dir.path(), "crash"));
}

#[test]
fn leveldb_durable_writes_call_fsync() {
    let dir = tempfile::tempdir().expect("temp dir");
    const WRITES: usize = 20;
    let durable = temp_spec("leveldb", dir.path(), "durable");
    let Some(syncs) = traced_syncs(&durable, WRITES, dir.path()) else {
        return;
    };
    let relaxed = temp_spec("leveldb-nosync", dir.path(), "relaxed");
    let relaxed_syncs = traced_syncs(&relaxed, WRITES, dir.path()).unwrap_or(0);
    eprintln!(
        "leveldb — {WRITES} sequential writes: {syncs} fsync/fdatasync calls with sync_writes: true, \
         {relaxed_syncs} with sync_writes: false"
    );
    assert!(
        syncs >= WRITES,
        "each durable write must reach the disk: {syncs} syncs for {WRITES} writes"
    );
    assert!(
        relaxed_syncs < WRITES,
        "sync_writes: false should not sync every write ({relaxed_syncs})"
    );
}
