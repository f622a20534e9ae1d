//! The fault-injection suite of the embedded backends, through the front
//! door (`kvs::Config::from_url` and `kvs::open`), as a user's store meets
//! the faults: a log or WAL torn at every offset of its last record, a
//! flipped bit anywhere in LevelDB's files, and a disk that fills up in the
//! middle of a SQLite transaction (a child process under `RLIMIT_FSIZE`,
//! whose writes then fail as they do on a full disk) and frees up again.
//!
//! After every fault: every write acknowledged before it reads back, no
//! write acknowledged after it is lost on the next reopen, the store opens
//! or fails with a clear error, and nothing panics. Each case prints (and
//! appends to `$KVS_FAULT_REPORT`, for `scripts/test`'s summary) how many
//! faults it injected and how many acknowledged writes it checked.
//!
//! One case by itself: `cargo test -p kvs-store --all-features --test faults --
//! leveldb_flipped_bits --nocapture`. The disk-full fault of LevelDB,
//! injected below rusty-leveldb, is a unit test in
//! `src/backend/leveldb/tests.rs`.

use kvs::testkit::env::report_faults as report;
use kvs::{Error, Store};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

async fn open(url: &str) -> kvs::Result<Arc<dyn Store>> {
    kvs::open(&kvs::Config::from_url(url)?).await
}

fn value(i: usize, len: usize) -> Vec<u8> {
    format!("{i:05}-")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(len)
        .collect()
}

/// Every file under `dir` whose name ends in `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// After a fault has been dealt with: a write made now survives a reopen.
async fn write_after_survives(url: &str, store: Arc<dyn Store>, what: &str) {
    store
        .set("after-the-fault", b"kept", None)
        .await
        .unwrap_or_else(|e| panic!("{what}: a write after reopening failed: {e}"));
    store.close().await.unwrap();
    drop(store);
    let store = open(url)
        .await
        .unwrap_or_else(|e| panic!("{what}: the second reopen failed: {e}"));
    let got = store.get("after-the-fault").await;
    assert_eq!(
        got.ok().as_deref(),
        Some(&b"kept"[..]),
        "{what}: a write acknowledged after the fault was lost"
    );
    store.close().await.unwrap();
}

/// Opens `url` after its last write (`last`, after `k0`..`k9`) was torn:
/// it opens, every earlier write reads back, the torn one does not, and a
/// write made now survives a reopen. Returns how many writes it checked.
async fn reopen_after_a_torn_write(url: &str, what: &str) -> usize {
    let store = open(url)
        .await
        .unwrap_or_else(|e| panic!("{what}: a torn tail refused to open: {e}"));
    let mut checked = 0;
    for i in 0..10 {
        let got = store.get(&format!("k{i}")).await;
        assert_eq!(got.ok(), Some(value(i, 100).into()), "{what}: k{i}");
        checked += 1;
    }
    assert!(
        !store.exists("last").await.unwrap(),
        "{what}: a torn write read back"
    );
    write_after_survives(url, store, what).await;
    checked + 1
}

// ---------------------------------------------------------------- LevelDB

/// The newest log cut at every offset of its last record (a 1 KB write):
/// each reopen keeps every write before it, drops the torn one, and keeps
/// what is written after it through the next reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leveldb_log_torn_at_every_offset_of_its_last_record() {
    let pristine = tempfile::tempdir().unwrap();
    let url = format!("leveldb://{}?namespace=torn", pristine.path().display());
    let store = open(&url).await.unwrap();
    for i in 0..10 {
        store
            .set(&format!("k{i}"), &value(i, 100), None)
            .await
            .unwrap();
    }
    // Every commit reaches the file (kvs flushes each), so its growth is
    // the last record.
    let log = files(pristine.path(), ".log").pop().expect("a log");
    let before = std::fs::metadata(&log).unwrap().len();
    store.set("last", &value(99, 1000), None).await.unwrap();
    let after = std::fs::metadata(&log).unwrap().len();
    assert!(after > before + 1000, "{before}..{after}");
    drop(store); // not closed: a close could compact the log away

    let mut faults = 0;
    let mut checked = 0;
    for cut in before..after {
        let work = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), work.path());
        let torn = work.path().join(log.strip_prefix(pristine.path()).unwrap());
        truncate(&torn, cut);
        faults += 1;
        let url = format!("leveldb://{}?namespace=torn", work.path().display());
        let what = format!("log cut at {cut} of {before}..{after}");
        checked += reopen_after_a_torn_write(&url, &what).await;
    }
    report(
        "leveldb log torn at every offset of its last record",
        faults,
        checked,
    );
}

/// What a read of one key after a fault said.
enum Read {
    Right,
    /// An error: the damage is reported.
    Refused,
    /// Missing or a wrong value, with no error: the one thing never allowed
    /// (but for the keys of a torn tail).
    Silent,
}

async fn read(store: &dyn Store, key: &str, want: &[u8]) -> Read {
    match store.get(key).await {
        Ok(v) if v == want => Read::Right,
        Ok(_) | Err(Error::NotFound) => Read::Silent,
        Err(_) => Read::Refused,
    }
}

/// A bit flipped in every 7th byte (and every byte of the last 64, where
/// the table footer is) of each file of a database: the table, the log and
/// the manifest. Every time, the store refuses to open with an error, or
/// each key reads back right or fails with an error; never a missing key or
/// a wrong value without one, except the keys of the log's last record,
/// whose damage cannot be told from a torn write (it drops only them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leveldb_flipped_bits() {
    const TABLED: usize = 60;
    const LOGGED: usize = 40;
    let pristine = tempfile::tempdir().unwrap();
    let url = format!("leveldb://{}?namespace=flip", pristine.path().display());
    let store = open(&url).await.unwrap();
    for i in 0..TABLED {
        store
            .set(&format!("k{i:03}"), &value(i, 200), None)
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    drop(store);
    // Reopening moves the log into a table; these go to the new log.
    let store = open(&url).await.unwrap();
    for i in TABLED..TABLED + LOGGED {
        store
            .set(&format!("k{i:03}"), &value(i, 200), None)
            .await
            .unwrap();
    }
    drop(store);
    let keys: Vec<(String, Vec<u8>)> = (0..TABLED + LOGGED)
        .map(|i| (format!("k{i:03}"), value(i, 200)))
        .collect();
    let last_logged = keys.len() - 1;

    // The table, the log, the manifest and CURRENT (not LOCK or LOG).
    let targets: Vec<PathBuf> = files(pristine.path(), "")
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".ldb")
                || name.ends_with(".log")
                || name.starts_with("MANIFEST")
                || name == "CURRENT"
        })
        .collect();
    assert!(
        targets
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "ldb")),
        "{targets:?}"
    );

    let (mut faults, mut checked, mut refused_opens, mut reported_reads) = (0, 0, 0, 0);
    let (mut torn_tails, mut example) = (0, None);
    for target in &targets {
        let relative = target.strip_prefix(pristine.path()).unwrap();
        let original = std::fs::read(target).unwrap();
        let len = original.len();
        let offsets: Vec<usize> = (0..len)
            .filter(|&at| at % 7 == 0 || at + 64 >= len)
            .collect();
        for at in offsets {
            let work = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), work.path());
            let mut damaged = original.clone();
            damaged[at] ^= 1 << (at % 8);
            std::fs::write(work.path().join(relative), &damaged).unwrap();
            faults += 1;
            let what = format!("bit {} of byte {at} of {}", at % 8, relative.display());
            let url = format!("leveldb://{}?namespace=flip", work.path().display());
            let store = match open(&url).await {
                Ok(store) => store,
                Err(e) => {
                    assert!(matches!(e, Error::Backend { .. }), "{what}: {e}");
                    refused_opens += 1;
                    example.get_or_insert_with(|| e.to_string());
                    continue;
                }
            };
            for (i, (key, want)) in keys.iter().enumerate() {
                match read(&*store, key, want).await {
                    Read::Right => checked += 1,
                    Read::Refused => reported_reads += 1,
                    Read::Silent
                        if i == last_logged && relative.extension().is_some_and(|e| e == "log") =>
                    {
                        torn_tails += 1;
                    }
                    Read::Silent => panic!("{what}: {key} is lost or wrong, and nothing said so"),
                }
            }
            // A store whose table is damaged may refuse the write; one it
            // acknowledges must survive a reopen.
            match store.set("after-the-fault", b"kept", None).await {
                Ok(()) => {
                    store.close().await.unwrap();
                    drop(store);
                    if let Ok(store) = open(&url).await {
                        assert!(
                            !matches!(store.get("after-the-fault").await, Err(Error::NotFound)),
                            "{what}: a write acknowledged after the fault was lost"
                        );
                        checked += 1;
                        store.close().await.unwrap();
                    }
                }
                Err(_) => reported_reads += 1,
            }
        }
    }
    eprintln!(
        "leveldb flipped bits: {refused_opens} opens refused, {reported_reads} reads or writes failed with an error, {torn_tails} flips in the log's last record dropped it as a torn tail; a refusal reads: {}",
        example.unwrap_or_default()
    );
    report(
        "leveldb flipped bits in table, log and manifest",
        faults,
        checked,
    );
}

// ----------------------------------------------------------------- SQLite

/// The WAL cut at every offset of its last frame (the commit frame of the
/// last write): each reopen keeps every earlier write, drops the torn one,
/// and keeps what is written after it through the next reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_torn_at_every_offset_of_its_last_frame() {
    let pristine = tempfile::tempdir().unwrap();
    let db = pristine.path().join("torn.db");
    let url = format!("sqlite://{}?sync_writes=true", db.display());
    let store = open(&url).await.unwrap();
    for i in 0..10 {
        store
            .set(&format!("k{i}"), &value(i, 100), None)
            .await
            .unwrap();
    }
    store.set("last", &value(99, 1000), None).await.unwrap();
    // Copied while the store is open, so the WAL still holds its frames.
    let snapshot = tempfile::tempdir().unwrap();
    let wal_name = "torn.db-wal";
    std::fs::copy(&db, snapshot.path().join("torn.db")).unwrap();
    std::fs::copy(
        pristine.path().join(wal_name),
        snapshot.path().join(wal_name),
    )
    .unwrap();
    store.close().await.unwrap();

    let header = std::fs::read(snapshot.path().join("torn.db")).unwrap();
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let frame = 24 + page_size;
    let wal_len = std::fs::metadata(snapshot.path().join(wal_name))
        .unwrap()
        .len();
    assert!(
        wal_len >= 32 + 2 * frame,
        "the WAL holds frames: {wal_len} bytes"
    );
    let last_frame = wal_len - frame;

    let (mut faults, mut checked) = (0, 0);
    for cut in last_frame..wal_len {
        let work = tempfile::tempdir().unwrap();
        copy_dir(snapshot.path(), work.path());
        truncate(&work.path().join(wal_name), cut);
        faults += 1;
        let what = format!("WAL cut at {cut} (last frame at {last_frame}, {frame} bytes)");
        let url = format!(
            "sqlite://{}?sync_writes=true",
            work.path().join("torn.db").display()
        );
        checked += reopen_after_a_torn_write(&url, &what).await;
    }
    report("sqlite WAL torn in its last frame", faults, checked);
}

/// The child of the disk-full case: writes batches into a store under a
/// file-size limit (so a write that crosses it is cut short, as on a full
/// disk), prints each batch's fate, then lifts the limit and writes more.
/// Does nothing unless `KVS_FAULT_CHILD` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_child() {
    let (Ok(url), Ok(limit)) = (
        std::env::var("KVS_FAULT_CHILD"),
        std::env::var("KVS_FAULT_LIMIT"),
    ) else {
        return;
    };
    let limit: u64 = limit.parse().unwrap();
    let store = open(&url).await.unwrap();
    set_file_size_limit(limit);
    // Batches until the disk has been full three times...
    let (mut batch, mut failures) = (0, 0);
    while failures < 3 {
        if !write_batch(&*store, batch).await {
            failures += 1;
        }
        batch += 1;
        assert!(batch < 900, "the limit was never reached");
    }
    // ...then ten with room to spare.
    set_file_size_limit(u64::MAX);
    for batch in 990..1000 {
        write_batch(&*store, batch).await;
    }
    store.close().await.unwrap();
}

/// Writes batch `batch` and prints its fate: `ack N` or `err N message`.
async fn write_batch(store: &dyn Store, batch: usize) -> bool {
    let entries = batch_entries(batch);
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
    let result = store.set_many(&refs, None).await;
    let mut out = std::io::stdout().lock();
    match &result {
        Ok(()) => writeln!(out, "ack {batch}").unwrap(),
        Err(e) => writeln!(out, "err {batch} {e}").unwrap(),
    }
    out.flush().unwrap();
    result.is_ok()
}

fn batch_entries(batch: usize) -> Vec<(String, Vec<u8>)> {
    (0..20)
        .map(|i| (format!("b{batch:04}-{i:02}"), value(batch * 20 + i, 700)))
        .collect()
}

/// Limits the size of every file this process writes (`u64::MAX`: none).
/// `SIGXFSZ` is ignored, so a write that crosses the limit is cut short
/// and the next fails with `EFBIG`, as writes do on a full disk.
fn set_file_size_limit(limit: u64) {
    // SAFETY: plain libc calls with valid arguments; the child process
    // runs nothing else that depends on SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut current = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut current), 0);
        current.rlim_cur = if limit == u64::MAX {
            current.rlim_max
        } else {
            limit
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &current), 0);
    }
}

/// The disk fills up in the middle of SQLite transactions (the child above,
/// under several limits): the failed batches say so and leave nothing
/// behind, and once there is room again every acknowledged batch, before
/// and after the fault, is whole after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_mid_transaction() {
    let exe = std::env::current_exe().unwrap();
    let (mut faults, mut checked) = (0, 0);
    for limit in [200_000u64, 333_333, 500_000, 777_777, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?sync_writes=true",
            dir.path().join("full.db").display()
        );
        let output = std::process::Command::new(&exe)
            .args([
                "--exact",
                "sqlite_disk_full_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KVS_FAULT_CHILD", &url)
            .env("KVS_FAULT_LIMIT", limit.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "limit {limit}: the writer failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (mut acked, mut failed) = (Vec::new(), Vec::new());
        for line in stdout.lines() {
            if let Some(n) = line.strip_prefix("ack ") {
                acked.push(n.parse::<usize>().unwrap());
            } else if let Some(rest) = line.strip_prefix("err ") {
                let (n, message) = rest.split_once(' ').unwrap();
                assert!(
                    message.contains("full") || message.contains("disk"),
                    "limit {limit}: an unclear error: {message}"
                );
                failed.push(n.parse::<usize>().unwrap());
            }
        }
        assert_eq!(failed.len(), 3, "limit {limit}: {stdout}");
        assert!(
            acked.iter().filter(|&&b| b >= 990).count() == 10,
            "limit {limit}: {stdout}"
        );
        faults += failed.len();

        let store = open(&url).await.unwrap();
        for &batch in &acked {
            for (key, want) in batch_entries(batch) {
                let got = store.get(&key).await;
                assert_eq!(
                    got.ok(),
                    Some(want.into()),
                    "limit {limit}: {key} of an acknowledged batch"
                );
                checked += 1;
            }
        }
        for &batch in &failed {
            for (key, _) in batch_entries(batch) {
                assert!(
                    !store.exists(&key).await.unwrap(),
                    "limit {limit}: {key} of a failed batch is stored"
                );
            }
        }
        store.close().await.unwrap();
    }
    report("sqlite disk full mid-transaction", faults, checked);
}
