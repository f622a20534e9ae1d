//! Faults injected below rusty-leveldb (a disk that fills up, through the
//! test-only hook in `env.rs`) and damaged files: no acknowledged write is
//! lost, no panic escapes, and the store recovers by itself once it can.

use super::env::faults;
use super::thread::Worker;
use super::LevelDbStore;
use crate::config::LevelDbConfig;
use crate::key::namespace_dir_name;
use crate::{Error, Store};
use std::path::Path;

fn config(dir: &Path) -> LevelDbConfig {
    LevelDbConfig {
        path: dir.to_path_buf(),
        ..LevelDbConfig::default()
    }
}

fn value(i: usize) -> Vec<u8> {
    format!("{i:04}").repeat(256).into_bytes()
}

/// The disk fills up under a stream of writes, `room` bytes after the
/// fault is armed (so the last write that reaches the disk is torn at
/// every kind of offset: in a record's header, in its value, across
/// LevelDB's 32 KB log blocks): the writes that fail say so, and once
/// space is back the store works again without being reopened by its
/// user, every write acknowledged before, during or after the fault is
/// readable, and all of them survive a reopen. Returns how many writes
/// failed and how many acknowledged ones were checked.
async fn fill_and_recover(room: usize) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let faults = faults::arm(&dir.path().join(namespace_dir_name("full")));
    let store = LevelDbStore::open("full", config(dir.path()))
        .await
        .unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        store.set(&format!("k{i}"), &value(i), None).await.unwrap();
        acknowledged.push(i);
    }

    faults.fill_after(room);
    let mut failed = 0;
    for i in 20..80 {
        match store.set(&format!("k{i}"), &value(i), None).await {
            Ok(()) => acknowledged.push(i),
            Err(e) => {
                failed += 1;
                assert!(matches!(e, Error::Backend { .. }), "{e}");
                assert!(e.to_string().contains("full"), "names the directory: {e}");
            }
        }
    }
    assert!(
        failed > 0,
        "room {room}: the disk filled up, yet every write succeeded"
    );
    // While the disk is full the database cannot be reopened, and reads
    // are refused too (its memory may hold a write that failed); a read
    // that answers answers right.
    for &i in &acknowledged {
        match store.get(&format!("k{i}")).await {
            Ok(v) => assert_eq!(v, value(i), "room {room}: k{i}"),
            Err(e) => assert!(e.to_string().contains("out of use"), "{e}"),
        }
    }

    faults.free();
    for i in 80..90 {
        store
            .set(&format!("k{i}"), &value(i), None)
            .await
            .unwrap_or_else(|e| panic!("room {room}: space is back, yet k{i} failed: {e}"));
        acknowledged.push(i);
    }
    for &i in &acknowledged {
        let got = store.get(&format!("k{i}")).await;
        assert_eq!(got.ok(), Some(value(i).into()), "room {room}: k{i}");
    }
    store.close().await.unwrap();

    let store = LevelDbStore::open("full", config(dir.path()))
        .await
        .unwrap();
    for &i in &acknowledged {
        let got = store.get(&format!("k{i}")).await;
        assert_eq!(
            got.ok(),
            Some(value(i).into()),
            "room {room}: k{i} after a reopen"
        );
    }
    store.close().await.unwrap();
    (failed, acknowledged.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_and_loses_no_acknowledged_one() {
    let (mut faults, mut checked) = (0, 0);
    // A record here is a 7-byte header and a batch of about 1040 bytes.
    for room in [
        0, 1, 6, 7, 100, 1040, 1047, 1048, 1500, 2095, 2096, 5000, 32_000, 33_000,
    ] {
        let (failed, acknowledged) = fill_and_recover(room).await;
        faults += failed;
        checked += acknowledged;
    }
    #[cfg(feature = "testkit")]
    crate::testkit::env::report_faults(
        "leveldb disk full, writes torn at 14 offsets",
        faults,
        checked,
    );
    #[cfg(not(feature = "testkit"))]
    eprintln!("leveldb disk full: {faults} faults injected, {checked} acknowledged writes checked, 0 lost");
}

/// A table file cut short: whatever rusty-leveldb makes of it (it panics
/// on some damage), the store answers with errors naming the directory,
/// never a panic or a dead database thread, and the process goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_table_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LevelDbStore::open("torn", config(dir.path()))
            .await
            .unwrap();
        for i in 0..200 {
            store
                .set(&format!("k{i:03}"), &value(i), None)
                .await
                .unwrap();
        }
        store.close().await.unwrap();
    }
    // Reopening compacts the log into a table (a fresh log per open).
    LevelDbStore::open("torn", config(dir.path()))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let ns = dir.path().join(namespace_dir_name("torn"));
    let table = std::fs::read_dir(&ns)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ldb"))
        .expect("a table file");
    let len = std::fs::metadata(&table).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&table)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    match LevelDbStore::open("torn", config(dir.path())).await {
        Err(e) => assert!(e.to_string().contains("torn"), "{e}"),
        Ok(store) => {
            for i in 0..200 {
                match store.get(&format!("k{i:03}")).await {
                    Ok(v) => assert_eq!(v, value(i)),
                    Err(e) => {
                        let text = e.to_string();
                        assert!(!text.contains("thread has stopped"), "{text}");
                        assert!(text.contains("torn"), "{text}");
                    }
                }
            }
            store.close().await.unwrap();
        }
    }
}

/// Waits (up to a minute) until the database thread says `ready`.
async fn until(store: &LevelDbStore, ready: fn(&Worker) -> bool) {
    for _ in 0..6000 {
        if store.call(move |w, _| Ok(ready(w))).await.unwrap() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the database thread never got there");
}

/// A store without TTLs skips reading the record a `set` replaces (there is
/// no expiry entry to drop); the first TTL turns the reads back on, and a
/// sweep that empties the index turns them off again. Through all of it, an
/// overwrite without a TTL drops the old deadline's entry, so the sweep
/// never deletes the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_skip_the_expiry_lookup_only_while_no_key_has_a_ttl() {
    use crate::expiry::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LevelDbConfig {
        cleanup_interval: Duration::from_millis(5),
        ..config(dir.path())
    };
    let store = LevelDbStore::open_with_clock("ttl", config.clone(), clock.clone())
        .await
        .unwrap();
    assert!(
        !store.call(|w, _| Ok(w.expiring)).await.unwrap(),
        "a new database has no TTLs"
    );
    store.set("plain", b"1", None).await.unwrap();
    assert!(!store.call(|w, _| Ok(w.expiring)).await.unwrap());

    store
        .set("short", b"2", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(
        store.call(|w, _| Ok(w.expiring)).await.unwrap(),
        "a TTL was written"
    );
    clock.advance(Duration::from_secs(2));
    until(&store, |w| !w.expiring).await;
    assert!(!store.exists("short").await.unwrap());

    store
        .set("kept", b"3", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    store.set("kept", b"4", None).await.unwrap();
    clock.advance(Duration::from_secs(20));
    until(&store, |w| !w.expiring).await;
    assert_eq!(&store.get("kept").await.unwrap()[..], b"4");
    assert_eq!(store.ttl("kept").await.unwrap(), None);
    store.close().await.unwrap();
    drop(store);

    // Reopened, the flag is read from the index itself.
    let store = LevelDbStore::open_with_clock("ttl", config.clone(), clock.clone())
        .await
        .unwrap();
    assert!(!store.call(|w, _| Ok(w.expiring)).await.unwrap());
    store
        .set("later", b"5", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);
    let store = LevelDbStore::open_with_clock("ttl", config, clock)
        .await
        .unwrap();
    assert!(
        store.call(|w, _| Ok(w.expiring)).await.unwrap(),
        "the index holds an entry"
    );
    store.close().await.unwrap();
}
