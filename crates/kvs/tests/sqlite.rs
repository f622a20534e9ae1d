//! The conformance suite on the SQLite backend (a fresh file per case, an
//! injected clock, opened from YAML through `kvs::open`), plus what only a file-backed store has: reopening,
//! sharing a file, bad paths.

use kvs::testkit::ConfigHarness;
use kvs::{Error, SqliteConfig, SqliteStore, Store};
use std::time::Duration;

/// A fresh file per case, opened through `kvs::open` from YAML.
async fn harness() -> Option<ConfigHarness> {
    Some(ConfigHarness::in_temp_dir(
        "type: sqlite\nsqlite:\n  path: \"{dir}/kvs.db\"\n",
    ))
}

kvs::conformance_tests!(harness);

fn config_in(dir: &std::path::Path) -> SqliteConfig {
    let mut config = SqliteConfig::default();
    config.path = dir.join("nested/dirs/kvs.db");
    config
}

#[tokio::test]
async fn a_directory_as_the_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::default();
    config.path = dir.path().to_path_buf();
    let err = SqliteStore::open("ns", config).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_corrupt_file_is_a_clear_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db.db");
    let garbage = b"this is not a SQLite database, it is a letter to my aunt.".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let mut config = SqliteConfig::default();
    config.path = path.clone();
    let err = SqliteStore::open("ns", config).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-db.db"), "{err}");
    assert!(!err.is_temporary(), "a corrupt file stays corrupt: {err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the user's file must be untouched"
    );
}

#[tokio::test]
async fn an_unwritable_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::create_dir(locked.join("probe")).is_ok() {
        // Root ignores directory permissions, so there is nothing to refuse.
        eprintln!("!!!!! SKIPPED: an_unwritable_directory_is_a_clear_error — running as root");
        return;
    }
    let mut config = SqliteConfig::default();
    config.path = locked.join("sub/kvs.db");
    let err = SqliteStore::open("ns", config).await.unwrap_err();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");
}

/// The `sqlite3` program, or `None` after a loud skip line (a failure when
/// every backend is required, as in CI, where `scripts/test` installs it).
fn sqlite3_cli() -> Option<&'static str> {
    let found = std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("sqlite3");
    }
    assert!(
        !kvs::testkit::env::require_all(),
        "the sqlite3 program is missing; scripts/test installs it"
    );
    eprintln!("!!!!! SKIPPED: sqlite3 interop — the sqlite3 program is not installed !!!!!");
    None
}

#[tokio::test]
async fn the_file_is_an_ordinary_sqlite_database() {
    let Some(sqlite3) = sqlite3_cli() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let path = config.path.clone();
    let store = SqliteStore::open("app", config.clone()).await.unwrap();
    store.set("user:1", b"ada", None).await.unwrap();
    store
        .set("user:2", b"\x00\xff", Some(Duration::from_secs(3600)))
        .await
        .unwrap();

    // Our rows, seen by the sqlite3 program while the store is open (WAL).
    let out = std::process::Command::new(sqlite3)
        .arg(&path)
        .arg("SELECT namespace || '|' || key || '|' || hex(value) || '|' || (expires_at IS NULL) FROM kvs ORDER BY key;")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "app|user:1|616461|1\napp|user:2|00FF|0\n"
    );
    let tables = std::process::Command::new(sqlite3)
        .arg(&path)
        .arg(".tables")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&tables.stdout).contains("kvs"));

    // And a row written by the sqlite3 program is a key to us.
    let insert = std::process::Command::new(sqlite3)
        .arg(&path)
        .arg("INSERT INTO kvs (namespace, key, value, expires_at) VALUES ('app', 'from-cli', CAST('hello' AS BLOB), NULL);")
        .output()
        .unwrap();
    assert!(
        insert.status.success(),
        "{}",
        String::from_utf8_lossy(&insert.stderr)
    );
    assert_eq!(&store.get("from-cli").await.unwrap()[..], b"hello");
    assert_eq!(
        store.list("").await.unwrap(),
        vec!["from-cli", "user:1", "user:2"]
    );
    store.close().await.unwrap();
}

/// A write that waits out the busy timeout behind another process's lock
/// fails with an error that says it is worth retrying, and the same write
/// succeeds once the lock is gone.
#[tokio::test]
async fn a_locked_database_is_a_temporary_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::default();
    config.path = dir.path().join("kvs.db");
    let store = SqliteStore::open("ns", config.clone()).await.unwrap();
    store.set("k", b"before", None).await.unwrap();

    // Another connection (as another process would) holds the write lock.
    let other = rusqlite::Connection::open(&config.path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = store.set("k", b"during", None).await.unwrap_err();
    assert!(err.is_temporary(), "busy is worth retrying: {err}");
    other.execute_batch("COMMIT").unwrap();

    store.set("k", b"after", None).await.unwrap();
    assert_eq!(&store.get("k").await.unwrap()[..], b"after");
}

/// A write of several statements that fails partway (here a trigger,
/// standing in for a full disk or an I/O error on one row) leaves nothing
/// behind: the rows it wrote before the failure are undone, not
/// committed, and the store goes on working.
#[tokio::test]
async fn a_batch_write_that_fails_partway_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let store = SqliteStore::open("ns", config.clone()).await.unwrap();
    store.set("kept", b"old", None).await.unwrap();
    store.set("guard", b"g", None).await.unwrap();

    let other = rusqlite::Connection::open(&config.path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER refuse_insert BEFORE INSERT ON kvs WHEN NEW.key = 'bad' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;
             CREATE TRIGGER refuse_delete BEFORE DELETE ON kvs WHEN OLD.key = 'guard' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .unwrap();

    let entries: &[(&str, &[u8])] = &[("kept", b"new"), ("fresh", b"1"), ("bad", b"2")];
    let err = store.set_many(entries, None).await.unwrap_err();
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert_eq!(&store.get("kept").await.unwrap()[..], b"old");
    assert!(matches!(store.get("fresh").await, Err(Error::NotFound)));

    let err = store.delete_many(&["kept", "guard"]).await.unwrap_err();
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert_eq!(&store.get("kept").await.unwrap()[..], b"old");

    drop(other);
    store.set("after", b"ok", None).await.unwrap();
    assert_eq!(store.list("").await.unwrap(), ["after", "guard", "kept"]);
    store.close().await.unwrap();
}
