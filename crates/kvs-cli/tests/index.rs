//! `kvs index build` on the test script's Redis server: killed with
//! SIGKILL halfway, it goes on from where it stopped when run again, and
//! the index it leaves lists every key.

#![cfg(feature = "redis")]

use std::io::BufRead as _;
use std::process::{Command, Stdio};

fn server() -> Option<String> {
    match std::env::var("KVS_TEST_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => Some(v.split(',').next().unwrap_or_default().to_owned()),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("KVS_TEST_REDIS_URL is not set; in CI every backend must be tested (run scripts/test)")
        }
        _ => {
            eprintln!("!!!!! SKIPPED: kvs index build — KVS_TEST_REDIS_URL is not set !!!!!");
            None
        }
    }
}

fn kvs(store: &str) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kvs"));
    cmd.env_remove("KVS_STORE").arg("--store").arg(store);
    cmd
}

#[test]
fn a_build_killed_halfway_resumes_and_lists_every_key() {
    let Some(url) = server() else { return };
    let namespace = format!("cli-index-{}", std::process::id());
    let plain = format!("{url}?namespace={namespace}");
    let indexed = format!("{plain}&index=true");
    const KEYS: usize = 300_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = runtime.block_on(async {
        let store = kvs::open(&kvs::Config::from_url(&plain).expect("url"))
            .await
            .expect("open");
        let names: Vec<String> = (0..KEYS).map(|i| format!("k:{i:06}")).collect();
        for chunk in names.chunks(5_000) {
            let entries: Vec<(&str, &[u8])> =
                chunk.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
            store.set_many(&entries, None).await.expect("set_many");
        }
        store
    });

    // Listing before the build is refused, naming the command.
    let out = kvs(&indexed).arg("count").output().expect("kvs count");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kvs index build") && stderr.lines().count() == 1,
        "{stderr}"
    );

    // The first progress line means 100 steps are recorded; kill it there.
    let mut build = kvs(&plain)
        .args(["index", "build"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvs index build");
    let mut lines = std::io::BufReader::new(build.stderr.take().expect("stderr")).lines();
    let first = lines.next().expect("a progress line").expect("stderr");
    assert!(first.contains("keys indexed so far"), "{first}");
    build.kill().expect("kill -9");
    build.wait().expect("wait");

    let out = kvs(&indexed).arg("list").output().expect("kvs list");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("being built"),
        "a killed build leaves the index unfinished: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = kvs(&plain)
        .args(["index", "build", "--json"])
        .output()
        .expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["complete"], true);
    assert_eq!(report["resumed"], true, "{report}");
    let added = report["added"].as_u64().expect("added");
    assert!(
        added > 0 && added < KEYS as u64,
        "the second run did only the rest: {added}"
    );

    let out = kvs(&indexed).arg("count").output().expect("kvs count");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        KEYS.to_string()
    );
    let out = kvs(&indexed)
        .args(["list", "k:29999"])
        .output()
        .expect("kvs list");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        (0..10).map(|i| format!("k:29999{i}")).collect::<Vec<_>>()
    );
    // Through the index, so that the index goes too (the plain store was
    // opened before there was one, and lists by SCAN).
    let out = kvs(&indexed)
        .args(["clear", "--yes"])
        .output()
        .expect("kvs clear");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        KEYS.to_string()
    );
    runtime.block_on(async {
        assert_eq!(store.count("").await.expect("count"), 0);
    });
}
