//! Files of SQLite schema version 1 (kvs 0.1's `WITHOUT ROWID` table) are
//! migrated to version 2 (a rowid table) on open: with everything in them,
//! atomically under `kill -9`, and safely when two processes open the same
//! old file at once.
//!
//! `tests/fixtures/sqlite-v1.db` was written by kvs 0.1 (commit 8527141)
//! through `kvs::open_documents`: 80 keys `user:000`… whose values are
//! [`fixture_value`], `session:long` (a TTL of 100 years), `session:short`
//! (a TTL of 1 s, long expired), `counter` = 41, `user:000` in namespace
//! `tenant-b`, and the document `people/ada`.
//!
//! The child processes are this test binary, re-run on the
//! `migration_child` entry with `KVS_MIGRATION_CHILD` set.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sqlite-v1.db");

/// The value of `user:{i:03}` in the fixture.
fn fixture_value(i: usize) -> Vec<u8> {
    (0..(i * 97 % 6000)).map(|j| (j * 31 + i) as u8).collect()
}

fn copy_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("old.db");
    std::fs::copy(FIXTURE, &path).unwrap();
    path
}

fn url(path: &Path, namespace: &str) -> String {
    format!("sqlite://{}?namespace={namespace}", path.display())
}

/// The file's schema version and whether its `kvs` table has a rowid,
/// read with plain SQLite.
fn layout(path: &Path) -> (i64, bool) {
    let conn = Connection::open(path).unwrap();
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kvs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let leftovers: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'kvs_v2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leftovers, 0, "a half-done migration left kvs_v2 behind");
    (version, !sql.contains("WITHOUT ROWID"))
}

#[tokio::test]
async fn a_file_of_schema_1_opens_with_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    assert_eq!(layout(&path), (1, false), "the fixture is of schema 1");

    let config = kvs::Config::from_url(&url(&path, "default")).unwrap();
    let store = kvs::open_documents(&config).await.unwrap();
    assert_eq!(layout(&path), (2, true), "migrated on open");
    for i in 0..80 {
        let key = format!("user:{i:03}");
        assert_eq!(store.get(&key).await.unwrap(), fixture_value(i), "{key}");
    }
    assert_eq!(&store.get("session:long").await.unwrap()[..], b"still here");
    let left = store.ttl("session:long").await.unwrap().expect("a TTL");
    assert!(left > Duration::from_secs(90 * 365 * 86_400), "{left:?}");
    assert!(!store.exists("session:short").await.unwrap());
    assert_eq!(store.increment("counter", 1).await.unwrap(), 42);
    assert_eq!(store.count("").await.unwrap(), 82);
    assert_eq!(store.list("user:07").await.unwrap().len(), 10);
    let ada = store.get_doc("people", "ada").await.unwrap();
    assert_eq!(ada.data["name"], "Ada");

    let other = kvs::open(&kvs::Config::from_url(&url(&path, "tenant-b")).unwrap())
        .await
        .unwrap();
    assert_eq!(&other.get("user:000").await.unwrap()[..], b"tenant b");
    assert_eq!(other.count("").await.unwrap(), 1);
    other.close().await.unwrap();
    store.close().await.unwrap();

    // Opening again finds it current and changes nothing.
    let store = kvs::open(&config).await.unwrap();
    assert_eq!(store.count("").await.unwrap(), 82);
    store.close().await.unwrap();
    assert_eq!(layout(&path), (2, true));
}

/// Not a test of its own: opens the store `KVS_MIGRATION_CHILD` names
/// (migrating it), writes one key, counts, and prints what it saw.
#[tokio::test]
async fn migration_child() {
    let Ok(url) = std::env::var("KVS_MIGRATION_CHILD") else {
        return;
    };
    let store = kvs::open(&kvs::Config::from_url(&url).unwrap())
        .await
        .unwrap();
    let me = std::process::id().to_string();
    store
        .set(&format!("child:{me}"), me.as_bytes(), None)
        .await
        .unwrap();
    println!("count {}", store.count("").await.unwrap());
    store.close().await.unwrap();
}

fn child(url: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "migration_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KVS_MIGRATION_CHILD", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn two_processes_opening_a_file_of_schema_1_at_once_both_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let url = url(&path, "default");
    let children: Vec<_> = (0..2).map(|_| child(&url).spawn().unwrap()).collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        // 82 live keys of the fixture, plus its own key, plus perhaps the
        // other child's.
        assert!(
            stdout.contains("count 83") || stdout.contains("count 84"),
            "{stdout}"
        );
    }
    assert_eq!(layout(&path), (2, true));
    let conn = Connection::open(&path).unwrap();
    let children: i64 = conn
        .query_row(
            "SELECT count(*) FROM kvs WHERE key LIKE 'child:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(children, 2);
}

/// A file of schema 1 big enough that migrating it takes a while. The DDL
/// is kvs 0.1's, frozen here on purpose: the test must not follow the
/// crate's current schema.
fn big_v1_file(path: &Path, rows: usize) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE kvs (
             namespace  TEXT    NOT NULL,
             key        TEXT    NOT NULL,
             value      BLOB    NOT NULL,
             expires_at INTEGER,
             PRIMARY KEY (namespace, key)
         ) WITHOUT ROWID;
         CREATE INDEX kvs_expiry ON kvs (expires_at) WHERE expires_at IS NOT NULL;
         CREATE TABLE kvs_docs (
             namespace  TEXT    NOT NULL,
             collection TEXT    NOT NULL,
             id         TEXT    NOT NULL,
             body       TEXT    NOT NULL,
             created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL,
             PRIMARY KEY (namespace, collection, id)
         ) WITHOUT ROWID;
         PRAGMA user_version = 1;
         BEGIN;",
    )
    .unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO kvs (namespace, key, value, expires_at) VALUES ('default', ?1, ?2, NULL)",
        )
        .unwrap();
    for i in 0..rows {
        insert
            .execute(rusqlite::params![
                format!("k{i:06}"),
                fixture_value(i % 40 + 10)
            ])
            .unwrap();
    }
    drop(insert);
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

#[test]
fn a_kill_9_during_the_migration_leaves_one_layout_and_the_next_open_finishes_it() {
    const ROWS: usize = 20_000;
    const KILLS: u32 = 10;
    let pristine = tempfile::tempdir().unwrap();
    let original = pristine.path().join("big.db");
    big_v1_file(&original, ROWS);

    // How long a whole migration takes here, to spread the kills over it.
    let timing = tempfile::tempdir().unwrap();
    let timed = timing.path().join("big.db");
    std::fs::copy(&original, &timed).unwrap();
    let started = Instant::now();
    let output = child(&url(&timed, "default")).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let whole = started.elapsed();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut old_layout, mut new_layout, mut mid_way) = (0, 0, 0);
    for round in 0..KILLS {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("big.db");
        std::fs::copy(&original, &path).unwrap();
        let mut running = child(&url(&path, "default")).spawn().unwrap();
        std::thread::sleep(whole * round / KILLS);
        running.kill().unwrap();
        let _ = running.wait();

        // Uncommitted pages in the WAL: the kill landed inside the
        // migration's transaction (SQLite spills them there once its page
        // cache is full).
        let wal = std::fs::metadata(work.path().join("big.db-wal")).map_or(0, |m| m.len());
        match layout(&path) {
            (1, false) => {
                old_layout += 1;
                if wal > 0 {
                    mid_way += 1;
                }
            }
            (2, true) => new_layout += 1,
            other => panic!("round {round}: a mixed layout after kill -9: {other:?}"),
        }
        rt.block_on(async {
            let store = kvs::open(&kvs::Config::from_url(&url(&path, "default")).unwrap())
                .await
                .unwrap();
            let count = store.count("k").await.unwrap();
            assert_eq!(
                count, ROWS,
                "round {round}: rows after the kill and a reopen"
            );
            for i in [0, 1, ROWS / 2, ROWS - 1] {
                let key = format!("k{i:06}");
                assert_eq!(
                    store.get(&key).await.unwrap(),
                    fixture_value(i % 40 + 10),
                    "{key}"
                );
            }
            store.close().await.unwrap();
        });
        assert_eq!(
            layout(&path),
            (2, true),
            "round {round}: the reopen finished it"
        );
    }
    eprintln!(
        "migration under kill -9: {KILLS} kills over a {whole:?} migration of {ROWS} rows: {old_layout} left schema 1 ({mid_way} of them inside the migration's transaction), {new_layout} schema 2, none mixed; every reopen finished it"
    );
    assert!(
        old_layout > 0,
        "no kill landed before the migration committed"
    );
}
