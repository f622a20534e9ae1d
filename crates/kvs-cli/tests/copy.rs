//! `kvs copy`, run as a user runs it: store URLs, a checkpoint in the data
//! directory, a `kill -9` in the middle and `--resume` finishing the job.

use assert_cmd::Command;
use kvs::Store;
use std::path::Path;
use std::time::{Duration, Instant};

/// The `kvs` binary with its data directory (where copies keep their
/// checkpoints) inside `home`.
fn kvs(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kvs").expect("the kvs binary");
    cmd.env_remove("KVS_STORE")
        .env("XDG_DATA_HOME", home.join("data"));
    cmd
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` keys `key:0000000`.. of `size` bytes into the store at `url`.
fn fill(url: &str, n: usize, size: usize) {
    runtime().block_on(async {
        let store = kvs::open(&kvs::Config::from_url(url).unwrap())
            .await
            .unwrap();
        let value = vec![b'v'; size];
        for start in (0..n).step_by(10_000) {
            let keys: Vec<String> = (start..n.min(start + 10_000))
                .map(|i| format!("key:{i:07}"))
                .collect();
            let entries: Vec<(&str, &[u8])> = keys
                .iter()
                .map(|k| (k.as_str(), value.as_slice()))
                .collect();
            store.set_many(&entries, None).await.unwrap();
        }
        store.close().await.unwrap();
    });
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn copy_then_verify_a_sqlite_store_into_leveldb() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite://{}", dir.path().join("src.db").display());
    let dst = format!("leveldb://{}", dir.path().join("dst").display());
    fill(&src, 2_500, 10);
    kvs(dir.path())
        .args(["--store", &src, "set", "session", "s", "--ttl", "1h"])
        .assert()
        .success();
    let out = kvs(dir.path())
        .args(["copy", &src, &dst, "--verify", "--batch", "300", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copied"], 2_501);
    assert_eq!(report["verified"], 2_501);
    assert_eq!(report["mismatches"], 0);
    assert_eq!(report["bytes"], 25_001);
    let summary = stderr(&out);
    assert!(
        summary.starts_with("kvs: copied 2501 keys (25.0 kB) in "),
        "{summary}"
    );
    assert!(
        summary.contains("verified 2501 keys, 0 differ"),
        "{summary}"
    );
    kvs(dir.path())
        .args(["--store", &dst, "count"])
        .assert()
        .success()
        .stdout("2501\n");
    let ttl = kvs(dir.path())
        .args(["--store", &dst, "ttl", "session"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ttl.stdout).starts_with("59m"));
}

#[test]
fn documents_come_along_with_their_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite://{}", dir.path().join("src.db").display());
    let dst = format!("leveldb://{}", dir.path().join("dst").display());
    for (id, age) in [("ada", "36"), ("bob", "17")] {
        kvs(dir.path())
            .args([
                "--store",
                &src,
                "doc",
                "put",
                "users",
                id,
                &format!("{{\"age\":{age}}}"),
            ])
            .assert()
            .success();
    }
    kvs(dir.path())
        .args(["--store", &src, "set", "k", "v"])
        .assert()
        .success();
    let out = kvs(dir.path())
        .args(["copy", &src, &dst, "--documents", "--verify", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["copied"].as_u64(), report["documents"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(report["document_mismatches"], 0);
    assert!(
        stderr(&out).contains("copied 2 documents, 0 differ"),
        "{}",
        stderr(&out)
    );
    let get = |store: &str| {
        kvs(dir.path())
            .args(["--store", store, "doc", "get", "users", "ada"])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(
        get(&dst),
        get(&src),
        "the same document, timestamps included"
    );
}

#[test]
fn prefix_dry_run_and_delete_missing() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite://{}", dir.path().join("src.db").display());
    let dst = format!("sqlite://{}", dir.path().join("dst.db").display());
    fill(&src, 50, 3);
    for key in ["key:9999999", "other"] {
        kvs(dir.path())
            .args(["--store", &dst, "set", key, "old"])
            .assert()
            .success();
    }
    // A dry run says what it would do and does none of it.
    let out = kvs(dir.path())
        .args([
            "copy",
            &src,
            &dst,
            "--prefix",
            "key:",
            "--dry-run",
            "--delete-missing",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("would copy 50 keys") && stderr(&out).contains("would delete 1 keys"),
        "{}",
        stderr(&out)
    );
    kvs(dir.path())
        .args(["--store", &dst, "list"])
        .assert()
        .stdout("key:9999999\nother\n");
    // The real run: the prefix's extra key goes, the one outside stays.
    kvs(dir.path())
        .args([
            "copy",
            &src,
            &dst,
            "--prefix",
            "key:",
            "--delete-missing",
            "--verify",
        ])
        .assert()
        .success();
    kvs(dir.path())
        .args(["--store", &dst, "count", "key:"])
        .assert()
        .stdout("50\n");
    kvs(dir.path())
        .args(["--store", &dst, "exists", "other"])
        .assert()
        .stdout("true\n");
}

#[test]
fn a_difference_fails_verification_with_the_keys_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite://{}", dir.path().join("src.db").display());
    let dst = format!("sqlite://{}", dir.path().join("dst.db").display());
    fill(&src, 20, 3);
    kvs(dir.path())
        .args(["copy", &src, &dst])
        .assert()
        .success();
    kvs(dir.path())
        .args(["--store", &dst, "set", "key:0000003", "changed"])
        .assert()
        .success();
    let out = kvs(dir.path())
        .args(["copy", &src, &dst, "--dry-run", "--verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("kvs: differs: \"key:0000003\": the value differs\n"),
        "{err}"
    );
    assert!(
        err.ends_with("kvs: verification failed: 1 of 20 keys differ in DST\n"),
        "{err}"
    );
}

#[test]
fn bad_copies_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let src = format!("sqlite://{}", db.display());
    fill(&src, 3, 1);
    let same = format!("sqlite://{}/./a.db", dir.path().display());
    let cases: [(&[&str], i32, &str); 4] = [
        (&["copy", &src, &same], 2, "the same store"),
        (
            &["copy", "nothing-here", "memory://"],
            2,
            "neither a store URL",
        ),
        (
            &["copy", &src, "memory://", "--resume"],
            1,
            "no interrupted copy",
        ),
        (
            &[
                "copy",
                &format!("sqlite://{}/missing.db", dir.path().display()),
                "memory://",
            ],
            1,
            "no store at",
        ),
    ];
    for (args, code, message) in cases {
        let out = kvs(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert!(
        !dir.path().join("missing.db").exists(),
        "the source is never created"
    );
}

/// A copy killed with SIGKILL in the middle leaves a checkpoint;
/// `--resume` finishes from it, and verification finds every key.
#[test]
fn a_killed_copy_resumes_and_verifies_clean() {
    const KEYS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite://{}", dir.path().join("src.db").display());
    let dst = format!("leveldb://{}", dir.path().join("dst").display());
    fill(&src, KEYS, 100);
    let checkpoints = dir.path().join("data/kvs/copies");

    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kvs"))
        .args(["copy", &src, &dst, "--batch", "50"])
        .env_remove("KVS_STORE")
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the first pages are acknowledged: 4,000 pages in
    // all, so the copy is far from done.
    let deadline = Instant::now() + Duration::from_secs(120);
    let saved = loop {
        let found = std::fs::read_dir(&checkpoints)
            .ok()
            .and_then(|mut entries| entries.find_map(|e| e.ok()))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"));
        if let Some(path) = found {
            break path;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it saved a checkpoint"
        );
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        child.try_wait().unwrap().is_none(),
        "the copy must still be running when it is killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let copied_before = checkpoint["copied"].as_u64().unwrap();
    assert!(
        copied_before < KEYS as u64,
        "killed after {copied_before} keys"
    );

    let out = kvs(dir.path())
        .args(["copy", &src, &dst, "--resume", "--verify", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("kvs: resuming after \"key:"),
        "{}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copied"], KEYS);
    assert_eq!(report["verified"], KEYS);
    assert_eq!(report["mismatches"], 0);
    assert!(!saved.exists(), "a finished copy leaves no checkpoint");

    runtime().block_on(async {
        let store = kvs::open(&kvs::Config::from_url(&dst).unwrap())
            .await
            .unwrap();
        assert_eq!(store.count("").await.unwrap(), KEYS);
        store.close().await.unwrap();
    });
}

/// A source that never held a document copies none, and gains no
/// documents database (the source is only read).
#[test]
fn a_source_without_documents_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("leveldb://{}", dir.path().join("src").display());
    let dst = format!("sqlite://{}", dir.path().join("dst.db").display());
    kvs(dir.path())
        .args(["--store", &src, "set", "k", "v"])
        .assert()
        .success();
    for extra in [&[][..], &["--documents"]] {
        let out = kvs(dir.path())
            .args(["copy", &src, &dst, "--verify"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    }
    assert!(!dir.path().join("src/documents").exists());
}
