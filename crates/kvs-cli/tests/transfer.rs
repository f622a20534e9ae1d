//! `kvs export` and `kvs import`, through the binary: every backend's
//! export imports into every other byte for byte, TTLs included, and a bad
//! file writes nothing.

use assert_cmd::Command;
use std::path::Path;

fn kvs(store: &str) -> Command {
    let mut cmd = Command::cargo_bin("kvs").expect("the kvs binary");
    cmd.env_remove("KVS_STORE").arg("--store").arg(store);
    cmd
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server URL from the test script's environment, or a loud skip (a
/// failure in CI).
fn server(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{variable} is not set; in CI every backend must be tested (run scripts/test)")
        }
        _ => {
            eprintln!("!!!!! SKIPPED: export/import on {variable}'s server — it is not set !!!!!");
            None
        }
    }
}

/// A store URL per backend this run can reach, each in a namespace of its own.
fn stores(dir: &Path, tag: &str) -> Vec<String> {
    let ns = format!("xfer-{}-{tag}", std::process::id());
    let mut urls = vec![
        format!("sqlite://{}/{tag}.db?namespace={ns}", dir.display()),
        format!("leveldb://{}/{tag}-ldb?namespace={ns}", dir.display()),
    ];
    if cfg!(feature = "redis") {
        if let Some(url) = server("KVS_TEST_REDIS_URL") {
            urls.push(format!("{url}?namespace={ns}"));
        }
    }
    if cfg!(feature = "dynamodb") {
        if let Some(endpoints) = server("KVS_TEST_DYNAMODB_ENDPOINT") {
            let endpoint = endpoints.split(',').next().unwrap_or("").trim().to_owned();
            urls.push(format!(
                "dynamodb://kvs-test?endpoint={endpoint}&region=us-east-1&create_table=true&namespace={ns}"
            ));
        }
    }
    urls
}

/// Writes the same keys into `url`: text, binary, empty, with and without TTLs.
fn fill(url: &str) {
    let mut lines = String::new();
    for i in 0..30 {
        lines += &format!("{{\"key\":\"k:{i:02}\",\"value\":\"value {i}\"}}\n");
    }
    lines += "{\"key\":\"session\",\"value\":\"tok\",\"ttl_ms\":3600000}\n";
    lines += "{\"key\":\"empty\",\"value\":\"\"}\n";
    lines += "{\"key\":\"quote\\\"\\n\",\"value\":\"line\\nbreak \\u00e9\"}\n";
    kvs(url).arg("import").write_stdin(lines).assert().success();
    let binary: Vec<u8> = (0..=255).collect();
    kvs(url)
        .args(["set", "bin"])
        .write_stdin(binary)
        .assert()
        .success();
}

/// The export of `url` with `ttl_ms` cut to whole minutes, so that two
/// exports taken moments apart compare equal.
fn export(url: &str) -> String {
    let out = kvs(url).arg("export").output().unwrap();
    assert!(out.status.success(), "{url}: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(ms) = v.get("ttl_ms").and_then(|t| t.as_u64()) {
                v["ttl_ms"] = ms.div_ceil(60_000).into();
            }
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_backend_round_trips_into_every_other() {
    let dir = tempfile::tempdir().unwrap();
    let sources = stores(dir.path(), "src");
    let first = &sources[0];
    fill(first);
    let want = export(first);
    assert!(
        want.contains(r#""encoding":"base64""#),
        "binary is base64: {want}"
    );
    assert!(
        want.contains(r#""ttl_ms":60"#),
        "the TTL, in minutes: {want}"
    );
    assert_eq!(want.lines().count(), 34);
    // Each backend takes the first's export, and gives it on to the next.
    let mut from = first.clone();
    for (i, to) in sources
        .iter()
        .skip(1)
        .chain(std::iter::once(first))
        .enumerate()
    {
        let target = if to == first {
            stores(dir.path(), "back")[0].clone()
        } else {
            to.clone()
        };
        let dump = kvs(&from).arg("export").output().unwrap();
        assert!(dump.status.success());
        kvs(&target)
            .arg("import")
            .write_stdin(dump.stdout)
            .assert()
            .success();
        assert_eq!(export(&target), want, "step {i}: {from} -> {target}");
        let binary: Vec<u8> = (0..=255).collect();
        let got = kvs(&target).args(["get", "bin"]).output().unwrap();
        assert_eq!(got.stdout, binary, "{target}: bytes");
        from = target;
    }
    for url in &sources {
        let _ = kvs(url).args(["clear", "--yes"]).output();
    }
}

#[test]
fn a_bad_file_writes_nothing_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    kvs(&url).args(["set", "keep", "me"]).assert().success();
    let file = dir.path().join("dump.jsonl");
    std::fs::write(
        &file,
        "{\"key\":\"a\",\"value\":\"1\"}\n\n{\"key\":\"b\",\"value\":\"!\",\"encoding\":\"base64\"}\n",
    )
    .unwrap();
    let out = kvs(&url).arg("import").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("dump.jsonl, line 3: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    kvs(&url).args(["list"]).assert().success().stdout("keep\n");
}

#[test]
fn export_to_a_file_streams_pages() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let lines: String = (0..2_500)
        .map(|i| format!("{{\"key\":\"k{i:05}\",\"value\":\"v\"}}\n"))
        .collect();
    kvs(&url)
        .arg("import")
        .write_stdin(lines.clone())
        .assert()
        .success();
    let file = dir.path().join("out.jsonl");
    kvs(&url)
        .args(["export", "--output"])
        .arg(&file)
        .assert()
        .success()
        .stdout("");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), lines);
    kvs(&url)
        .args(["export", "--prefix", "k0249"])
        .assert()
        .success()
        .stdout("{\"key\":\"k02490\",\"value\":\"v\"}\n{\"key\":\"k02491\",\"value\":\"v\"}\n{\"key\":\"k02492\",\"value\":\"v\"}\n{\"key\":\"k02493\",\"value\":\"v\"}\n{\"key\":\"k02494\",\"value\":\"v\"}\n{\"key\":\"k02495\",\"value\":\"v\"}\n{\"key\":\"k02496\",\"value\":\"v\"}\n{\"key\":\"k02497\",\"value\":\"v\"}\n{\"key\":\"k02498\",\"value\":\"v\"}\n{\"key\":\"k02499\",\"value\":\"v\"}\n");
}
