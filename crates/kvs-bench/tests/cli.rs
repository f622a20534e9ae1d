//! The `kvs-bench` binary, as `kvs bench` and a user run it.

use assert_cmd::Command;

/// `kvs-bench --json` prints one JSON object per line: results, then one
/// comparison per peer with the fields scripts read.
#[test]
fn bench_prints_json_lines_with_a_ratio_for_every_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("kvs-bench")
        .unwrap()
        .env_remove("KVS_STORE")
        .args(["--quick", "--json", "--no-external-peers"])
        .args(["--keys", "1000", "--duration", "5ms", "--tasks", "1,2"])
        .arg("--store")
        .arg("memory://")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut comparisons = 0;
    for line in stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        if value["kind"] == "comparison" {
            comparisons += 1;
            for field in [
                "backend",
                "workload",
                "tasks",
                "peer",
                "kvs_ops_per_sec",
                "peer_ops_per_sec",
                "ratio",
            ] {
                assert!(value.get(field).is_some(), "{field} missing in {line}");
            }
            assert!(
                value["ratio"].is_number() || value["note"].is_string(),
                "{line}"
            );
        } else {
            assert_eq!(value["kind"], "result", "{line}");
        }
    }
    // 4 memory peers × 7 workloads × 2 task counts.
    assert_eq!(comparisons, 4 * 7 * 2, "{stdout}");
}

#[test]
fn bench_refuses_zero_tasks() {
    let out = Command::cargo_bin("kvs-bench")
        .unwrap()
        .args(["--tasks", "0", "--store", "memory://"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tasks"));
}
