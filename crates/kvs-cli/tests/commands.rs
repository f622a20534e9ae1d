//! Every library operation on the command line, with its `--json` output
//! and its exit codes (0, 1 error, 2 bad usage, 3 not found).

use assert_cmd::Command;

fn kvs(store: &str) -> Command {
    let mut cmd = Command::cargo_bin("kvs").expect("the kvs binary");
    cmd.env_remove("KVS_STORE")
        .env_remove("RUST_LOG")
        .arg("--store")
        .arg(store);
    cmd
}

fn store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (dir, url)
}

/// Runs `args` and returns (exit code, stdout, stderr).
fn run(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = kvs(url).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn batches_atomics_and_ttls() {
    let (_dir, url) = store();
    assert_eq!(run(&url, &["mset", "a", "1", "b", "2", "--ttl", "1h"]).0, 0);
    assert_eq!(
        run(&url, &["mget", "a", "b"]),
        (0, "1\n2\n".into(), String::new())
    );
    let (code, out, _) = run(&url, &["--json", "mget", "a", "zz"]);
    assert_eq!(code, 3, "a missing key is exit 3");
    assert_eq!(
        out,
        "[{\"key\":\"a\",\"value\":\"1\"},{\"key\":\"zz\",\"value\":null}]\n"
    );
    assert_eq!(run(&url, &["incr", "n", "-5"]).1, "-5\n");
    assert_eq!(run(&url, &["increment", "n"]).1, "-4\n");
    assert_eq!(run(&url, &["set-if-absent", "lock", "me"]).1, "true\n");
    assert_eq!(run(&url, &["setnx", "lock", "you"]).1, "false\n");
    assert_eq!(
        run(&url, &["cas", "lock", "new", "--expected", "you"]).1,
        "false\n"
    );
    assert_eq!(
        run(&url, &["cas", "lock", "new", "--expected", "me"]).1,
        "true\n"
    );
    assert_eq!(
        run(&url, &["--json", "cas", "gone", "x", "--absent"]).1,
        "true\n"
    );
    assert_eq!(
        run(&url, &["get", "lock"]).1,
        "new",
        "no newline into a pipe"
    );
    assert_eq!(run(&url, &["persist", "a"]).0, 0);
    assert_eq!(run(&url, &["ttl", "a"]).1, "none\n");
    assert_eq!(run(&url, &["expire", "a", "10m"]).0, 0);
    let (_, out, _) = run(&url, &["--json", "ttl", "a"]);
    let ms = serde_json::from_str::<serde_json::Value>(&out).unwrap()["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!(ms <= 600_000 && ms > 540_000, "{out}");
    assert_eq!(run(&url, &["expire", "nope", "1m"]).0, 3);
    assert_eq!(run(&url, &["persist", "nope"]).0, 3);
}

#[test]
fn listing_for_scripts() {
    let (_dir, url) = store();
    run(&url, &["mset", "a b", "1", "c", "2", "d:1", "3"]);
    assert_eq!(run(&url, &["list", "-0"]).1, "a b\0c\0d:1\0");
    assert_eq!(
        run(&url, &["--json", "list"]).1,
        "[\"a b\",\"c\",\"d:1\"]\n"
    );
    assert_eq!(run(&url, &["--json", "count"]).1, "3\n");
    assert_eq!(run(&url, &["--json", "exists", "c"]).1, "true\n");
    assert_eq!(
        run(&url, &["--json", "get", "c"]).1,
        "{\"key\":\"c\",\"value\":\"2\"}\n"
    );
    kvs(&url)
        .args(["set", "bin"])
        .write_stdin(vec![0xff, 0])
        .assert()
        .success();
    assert_eq!(
        run(&url, &["--json", "get", "bin"]).1,
        "{\"encoding\":\"base64\",\"key\":\"bin\",\"value\":\"/wA=\"}\n"
    );
    assert_eq!(run(&url, &["delete-prefix", "d:"]).1, "1\n");
    let (code, _, err) = run(&url, &["clear"]);
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "kvs: clear removes every key of the namespace; add --yes to do it\n"
        )
    );
    assert_eq!(
        run(&url, &["count"]).1,
        "3\n",
        "nothing cleared without --yes"
    );
    assert_eq!(run(&url, &["clear", "--yes"]).1, "3\n");
    assert_eq!(run(&url, &["count"]).1, "0\n");
}

#[test]
fn documents() {
    let (_dir, url) = store();
    assert_eq!(
        run(&url, &["doc", "put", "users", "ada", r#"{"age":36}"#]).0,
        0
    );
    kvs(&url)
        .args(["doc", "put", "users", "bob"])
        .write_stdin(r#"{"age":17}"#)
        .assert()
        .success();
    let (code, out, _) = run(&url, &["doc", "query", "users", r#"{"age":{"$gte":18}}"#]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (doc["id"].as_str(), doc["data"]["age"].as_i64()),
        (Some("ada"), Some(36))
    );
    assert_eq!(run(&url, &["doc", "query", "users"]).1.lines().count(), 2);
    let (_, out, _) = run(&url, &["doc", "get", "users", "bob"]);
    assert!(out.contains("\"created_at\""), "{out}");
    assert_eq!(run(&url, &["doc", "delete", "users", "bob"]).0, 0);
    assert_eq!(run(&url, &["doc", "get", "users", "bob"]).0, 3);
    assert_eq!(run(&url, &["list"]).1, "", "documents are not keys");
}

#[test]
fn bad_usage_exits_2_in_one_line() {
    let (_dir, url) = store();
    run(&url, &["set", "text", "not a number"]);
    for (args, want) in [
        (&["mset", "a", "1", "b"][..], "\"b\" has no value"),
        (&["get", ""], "invalid key"),
        (
            &["--namespace", &"n".repeat(300), "get", "k"],
            "invalid namespace",
        ),
        (&["doc", "query", "users", "[1]"], "must be a JSON object"),
        (
            &["doc", "query", "users", r#"{"a":{"$bogus":1}}"#],
            "unknown operator",
        ),
        (&["doc", "put", "users", "x", "{"], "is not JSON"),
        (&["delete-prefix", ""], "use `kvs clear --yes`"),
        (&["expire", "k", "soon"], "invalid duration \"soon\""),
        (&["cas", "k", "v"], "--expected"),
        (&["nonsense"], "unrecognized subcommand"),
    ] {
        let (code, _, err) = run(&url, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let (code, _, err) = run(&url, &["incr", "text"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("text"), "{err}");
    assert_eq!(
        run(&url, &["get", "text"]).1,
        "not a number",
        "left untouched"
    );
}

#[test]
fn completions_and_logging() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::cargo_bin("kvs")
            .unwrap()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("copy") && script.contains("export"),
            "{shell}: {script}"
        );
    }
    let (_dir, url) = store();
    run(&url, &["set", "k", "v"]);
    let out = kvs(&url)
        .env("RUST_LOG", "not=a=filter")
        .args(["count"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a log filter"));
    let out = kvs(&url)
        .env("RUST_LOG", "trace")
        .args(["set", "k", "v"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // RUST_LOG=kvs=debug shows each call as a span: backend, namespace,
    // operation, outcome and time, never the key or the value.
    let out = kvs(&url)
        .env("RUST_LOG", "kvs=debug")
        .args(["set", "secret-key", "secret-value"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("backend=\"sqlite\"")
            && log.contains("namespace=\"default\"")
            && log.contains("operation=\"set\"")
            && log.contains("outcome=\"ok\"")
            && log.contains("micros="),
        "{log}"
    );
    assert!(!log.contains("secret"), "{log}");
    let out = kvs(&url)
        .env("RUST_LOG", "kvs=debug")
        .args(["get", "missing"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("outcome=\"not_found\""), "{log}");
}
