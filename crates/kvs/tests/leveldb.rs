//! The conformance suite on the LevelDB backend (a fresh directory per
//! case, an injected clock), plus what only a directory-backed store has:
//! safe directory names, bad paths, sweeping.

use kvs::expiry::ManualClock;
use kvs::testkit::{Capabilities, Harness};
use kvs::{Error, LevelDbConfig, LevelDbStore, Result, Store};
use std::sync::Arc;
use std::time::Duration;

struct LevelDbHarness {
    dir: tempfile::TempDir,
    clock: ManualClock,
}

fn config_in(dir: &std::path::Path) -> LevelDbConfig {
    let mut config = LevelDbConfig::default();
    config.path = dir.to_path_buf();
    config
}

#[async_trait::async_trait]
impl Harness for LevelDbHarness {
    async fn open(&self, namespace: &str) -> Result<Arc<dyn Store>> {
        let clock = Arc::new(self.clock.clone());
        Ok(Arc::new(
            LevelDbStore::open_with_clock(namespace, config_in(self.dir.path()), clock).await?,
        ))
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new();
        caps.shared_namespaces = true;
        caps.persistent = true;
        caps
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

async fn harness() -> Option<LevelDbHarness> {
    Some(LevelDbHarness {
        dir: tempfile::tempdir().expect("temp dir"),
        clock: ManualClock::new(1_700_000_000_000),
    })
}

kvs::conformance_tests!(harness);

#[tokio::test]
async fn namespaces_get_safe_separate_directories() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let mut dirs = Vec::new();
    for namespace in [
        "../x",
        "/etc",
        "a/../../b",
        "a.b",
        "a-b",
        "a/b",
        "A.B",
        "..",
        ".",
    ] {
        let store = LevelDbStore::open(namespace, config_in(&base))
            .await
            .unwrap();
        store.set("k", namespace.as_bytes(), None).await.unwrap();
        let dir = store.dir().unwrap();
        assert_eq!(
            dir.parent(),
            Some(base.canonicalize().unwrap().as_path()),
            "{namespace:?} escaped: {}",
            dir.display()
        );
        dirs.push(dir);
        store.close().await.unwrap();
    }
    let unique: std::collections::BTreeSet<_> = dirs.iter().collect();
    assert_eq!(
        unique.len(),
        dirs.len(),
        "two namespaces share a directory: {dirs:?}"
    );
    // Nothing was created outside `base`.
    let outside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("base")]);
}

#[tokio::test]
async fn a_file_as_the_path_is_a_clear_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"keep me").unwrap();
    let err = LevelDbStore::open("ns", config_in(&file))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig { .. } | Error::Backend { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("plain-file"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[tokio::test]
async fn a_corrupt_database_is_a_clear_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = LevelDbStore::open("ns", config_in(dir.path()))
        .await
        .unwrap();
    store.set("k", b"v", None).await.unwrap();
    let db_dir = store.dir().unwrap();
    store.close().await.unwrap();
    // Garble every file of the database.
    let mut originals = Vec::new();
    for entry in std::fs::read_dir(&db_dir).unwrap() {
        let path = entry.unwrap().path();
        // LOCK holds nothing; LOG is LevelDB's own diagnostic log, which it
        // rotates on every open by design.
        if path
            .file_name()
            .is_some_and(|n| n == "LOCK" || n == "LOG" || n == "LOG.old")
        {
            continue;
        }
        let garbage = vec![0xA5u8; 4096];
        std::fs::write(&path, &garbage).unwrap();
        originals.push((path, garbage));
    }
    match LevelDbStore::open("ns", config_in(dir.path())).await {
        Err(err) => {
            assert!(matches!(err, Error::Backend { .. }), "{err:?}");
            assert!(
                err.to_string().contains(&db_dir.display().to_string()),
                "{err}"
            );
        }
        Ok(_) => panic!("a database whose files are all garbage must not open"),
    }
    for (path, garbage) in originals {
        assert_eq!(
            std::fs::read(&path).unwrap(),
            garbage,
            "{} was changed",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_sweep_removes_expired_keys_but_never_a_newer_value() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let mut config = config_in(dir.path());
    config.cleanup_interval = Duration::from_millis(20);
    let store = LevelDbStore::open_with_clock("ns", config, Arc::new(clock.clone()))
        .await
        .unwrap();
    for i in 0..50 {
        store
            .set(&format!("t{i:02}"), b"old", Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    // Rewritten before expiry: the old index entries must not delete these.
    for i in 0..10 {
        store.set(&format!("t{i:02}"), b"new", None).await.unwrap();
    }
    clock.advance(Duration::from_secs(5));
    // Let the sweep (every 20 ms) run a few times, bounded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.count("t").await.unwrap(), 10);
    for i in 0..10 {
        assert_eq!(&store.get(&format!("t{i:02}")).await.unwrap()[..], b"new");
    }
    store.close().await.unwrap();
}
