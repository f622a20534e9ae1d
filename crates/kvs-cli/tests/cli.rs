//! The `kvs` binary, driven as a user drives it.

use assert_cmd::Command;
use std::path::Path;

fn kvs(store: &str) -> Command {
    let mut cmd = Command::cargo_bin("kvs").expect("the kvs binary");
    cmd.env_remove("KVS_STORE").arg("--store").arg(store);
    cmd
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("cli.db").display())
}

#[test]
fn set_get_list_count_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    kvs(&url)
        .args(["set", "user:1", "ada"])
        .assert()
        .success()
        .stdout("");
    kvs(&url)
        .args(["set", "user:2", "bob", "--ttl", "10m"])
        .assert()
        .success();
    kvs(&url).args(["set", "other", "x"]).assert().success();
    kvs(&url)
        .args(["get", "user:1"])
        .assert()
        .success()
        .stdout("ada");
    kvs(&url)
        .args(["list", "user:"])
        .assert()
        .success()
        .stdout("user:1\nuser:2\n");
    kvs(&url)
        .args(["list"])
        .assert()
        .success()
        .stdout("other\nuser:1\nuser:2\n");
    kvs(&url)
        .args(["count", "user:"])
        .assert()
        .success()
        .stdout("2\n");
    kvs(&url)
        .args(["exists", "user:1"])
        .assert()
        .success()
        .stdout("true\n");
    kvs(&url).args(["delete", "user:1"]).assert().success();
    kvs(&url)
        .args(["exists", "user:1"])
        .assert()
        .success()
        .stdout("false\n");
    kvs(&url).args(["delete", "user:1"]).assert().success();
}

#[test]
fn values_from_stdin_are_binary_safe() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let bytes: Vec<u8> = (0..=255).collect();
    kvs(&url)
        .args(["set", "blob"])
        .write_stdin(bytes.clone())
        .assert()
        .success();
    let out = kvs(&url).args(["get", "blob"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout == bytes,
        "the value must come back byte for byte"
    );
}

#[test]
fn missing_keys_exit_3_with_one_line_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    kvs(&sqlite_url(dir.path()))
        .args(["set", "other", "x"])
        .assert()
        .success();
    let out = kvs(&sqlite_url(dir.path()))
        .args(["get", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "kvs: key not found\n");
}

#[test]
fn errors_are_one_line_and_never_show_a_password() {
    let out = kvs("redis://app:hunter2@host:1/notanumber")
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad URL is a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("kvs: "), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let out = kvs("sqlite://x.db?bogus=1")
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"bogus\""));

    let out = kvs("memory://")
        .args(["set", "k", "v", "--ttl", "5 minutes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad flag is a usage error");
}

#[test]
fn store_from_the_environment_config_files_and_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let mut cmd = Command::cargo_bin("kvs").unwrap();
    cmd.env("KVS_STORE", &url)
        .args(["set", "k", "from-env"])
        .assert()
        .success();
    kvs(&url)
        .args(["get", "k"])
        .assert()
        .success()
        .stdout("from-env");

    let config = dir.path().join("kvs.yaml");
    let db = dir.path().join("cli.db");
    std::fs::write(
        &config,
        format!("type: sqlite\npath: {:?}\nnamespace: other\n", db),
    )
    .unwrap();
    let mut cmd = Command::cargo_bin("kvs").unwrap();
    cmd.env_remove("KVS_STORE")
        .arg("--config")
        .arg(&config)
        .args(["set", "k", "in-other"]);
    cmd.assert().success();
    kvs(&url)
        .args(["get", "k"])
        .assert()
        .success()
        .stdout("from-env");
    kvs(&url)
        .args(["--namespace", "other", "get", "k"])
        .assert()
        .success()
        .stdout("in-other");
    kvs(&format!("{url}?namespace=other"))
        .args(["get", "k"])
        .assert()
        .success()
        .stdout("in-other");
}

/// A configuration file that does not parse is named in the one-line
/// error, with the line and column, and exits 2.
#[test]
fn a_bad_config_file_is_named_in_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kvs.yaml");
    std::fs::write(&path, "type: memory\nlayers: [compresion]\n").unwrap();
    let out = Command::cargo_bin("kvs")
        .unwrap()
        .args([
            "--config".as_ref(),
            path.as_os_str(),
            "get".as_ref(),
            "k".as_ref(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: cannot parse YAML", path.display()))
            && stderr.contains("compresion")
            && stderr.contains("line 2"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `layers:` in a configuration file reach the command line: a read-only
/// store reads, and refuses a write with one line and exit 1.
#[test]
fn layers_in_a_config_file_apply_to_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    kvs(&url).args(["set", "k", "v"]).assert().success();
    let config = dir.path().join("reader.yaml");
    std::fs::write(
        &config,
        format!(
            "type: sqlite\npath: {:?}\nlayers: [read_only]\n",
            dir.path().join("cli.db")
        ),
    )
    .unwrap();
    let reader = || {
        let mut cmd = Command::cargo_bin("kvs").unwrap();
        cmd.env_remove("KVS_STORE").arg("--config").arg(&config);
        cmd
    };
    reader().args(["get", "k"]).assert().success().stdout("v");
    let out = reader().args(["set", "k", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "kvs: set refused: the store is read-only\n"
    );
    kvs(&url).args(["get", "k"]).assert().success().stdout("v");
}

#[test]
fn leveldb_and_memory_urls_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("leveldb://{}", dir.path().join("ldb").display());
    kvs(&url).args(["set", "k", "v"]).assert().success();
    kvs(&url).args(["get", "k"]).assert().success().stdout("v");
    // Memory is private to each process: a second run starts empty.
    kvs("memory://").args(["set", "k", "v"]).assert().success();
    kvs("memory://").args(["get", "k"]).assert().code(3);
}

#[test]
fn the_default_store_is_sqlite_in_the_data_directory() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::cargo_bin("kvs").unwrap();
        cmd.env_remove("KVS_STORE")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"));
        cmd.args(args).assert()
    };
    run(&["set", "greeting", "hello"]).success();
    run(&["get", "greeting"]).success().stdout("hello");
    assert!(
        home.path().join("data/kvs/kvs.db").exists(),
        "the default database lives in the data directory"
    );
}

/// Reading never creates: on a path where nothing was written yet, every
/// reading command says "no store at PATH" (exit 1) and leaves nothing
/// behind; writing creates as always. A store at `/` is refused.
#[test]
fn reading_commands_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("mistyped/dirs/kvs.db");
    let leveldb = dir.path().join("ldb");
    for url in [
        format!("sqlite://{}", sqlite.display()),
        format!("leveldb://{}", leveldb.display()),
    ] {
        for args in [
            &["get", "k"][..],
            &["exists", "k"],
            &["list"],
            &["count"],
            &["ttl", "k"],
        ] {
            let out = kvs(&url).args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{url} {args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.starts_with("kvs: no store at "),
                "{url} {args:?}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "reading created {left:?}");

    // Writing creates, and then reading finds it.
    let url = format!("sqlite://{}", sqlite.display());
    kvs(&url).args(["set", "k", "v"]).assert().success();
    kvs(&url).args(["get", "k"]).assert().success().stdout("v");

    let out = kvs("leveldb:///").args(["set", "a", "b"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root directory"), "{err}");
    let out = kvs("sqlite://").args(["set", "a", "b"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The default build has the embedded backends: a networked store says
/// which feature to build with.
#[test]
#[cfg(not(all(feature = "redis", feature = "dynamodb")))]
fn a_missing_feature_is_named() {
    let mut cases = Vec::new();
    if !cfg!(feature = "redis") {
        cases.push((
            ["--store", "redis://127.0.0.1:1/0", "get", "k"]
                .map(String::from)
                .to_vec(),
            "--features redis",
        ));
    }
    if !cfg!(feature = "dynamodb") {
        cases.push((
            ["--store", "dynamodb://t?region=us-east-1", "get", "k"]
                .map(String::from)
                .to_vec(),
            "--features dynamodb",
        ));
    }
    // Layers that are features, declared in a configuration file.
    let dir = tempfile::tempdir().unwrap();
    let layer_config = |name: &str, layer: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("type: memory\nlayers: [{layer}]\n")).unwrap();
        path.display().to_string()
    };
    if !cfg!(feature = "compression") {
        let path = layer_config("compression.yaml", "compression: {}");
        cases.push((
            vec!["--config".into(), path, "get".into(), "k".into()],
            "--features compression",
        ));
    }
    if !cfg!(feature = "encryption") {
        let key = "{ id: k1, key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= }";
        let path = layer_config(
            "encryption.yaml",
            &format!("{{ encryption: {{ keys: [{key}] }} }}"),
        );
        cases.push((
            vec!["--config".into(), path, "get".into(), "k".into()],
            "--features encryption",
        ));
    }
    for (args, feature) in cases {
        let out = Command::cargo_bin("kvs")
            .unwrap()
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(feature), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

/// `kvs bench` runs the `kvs-bench` found beside `kvs` (then on PATH) with
/// the `--store`s and `--json` that `kvs` parsed and everything else as
/// given, and exits with its code; without one it names how to get it.
#[test]
#[cfg(unix)]
fn bench_runs_the_kvs_bench_binary_or_says_how_to_get_it() {
    let kvs_binary = assert_cmd::cargo::cargo_bin("kvs");
    let dir = tempfile::tempdir().unwrap();
    let kvs_copy = dir.path().join("kvs");
    // Files are written by a child: one this process had open for writing,
    // inherited by a child another test forks meanwhile, could not be run
    // ("text file busy").
    let shell = |script: &str, args: &[&Path]| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{script}");
    };
    shell(r#"cp "$1" "$2""#, &[&kvs_binary, &kvs_copy]);
    let run = |args: &[&str]| {
        Command::new(&kvs_copy)
            .env_remove("KVS_STORE")
            .env("PATH", "/nonexistent")
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&["bench", "--quick"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cargo run --release -p kvs-bench"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A stand-in that prints its arguments and exits 7.
    shell(
        r#"printf '#!/bin/sh\necho "$@"\nexit 7\n' > "$1" && chmod 755 "$1""#,
        &[&dir.path().join("kvs-bench")],
    );
    let out = run(&[
        "--store",
        "memory://",
        "bench",
        "--quick",
        "--store",
        "redis://127.0.0.1:1/0",
        "--help",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--store memory:// --quick --store redis://127.0.0.1:1/0 --help\n"
    );
    let out = run(&["bench", "--json", "--tasks", "1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "--json --tasks 1\n");
}
