//! The peers that cannot be built with kvs — OpenDAL's and keyv's SQLite
//! services (sqlx's `libsqlite3-sys` and rusqlite's both link `sqlite3`) and
//! openkeyv's DynamoDB store (it pins an older `aws-config`) — live in
//! `bench/peers`, a crate outside the workspace with its own lockfile. The
//! run builds and starts it with `cargo run` as a child process that prints
//! [`Line`]s as JSON.

use crate::report::Line;
use crate::suite::Options;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

/// The child crate's manifest, in the source tree this binary was built from.
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/peers/Cargo.toml");

/// Builds and runs the external peers of one backend with the same keys,
/// durations and task counts; `backend` holds the child's arguments that
/// say which backend and where (`--sqlite DIR`, `--dynamodb ENDPOINT
/// REGION`). Returns their result lines.
pub async fn peers(
    options: &Options,
    keys: usize,
    backend: &[OsString],
) -> Result<Vec<Line>, String> {
    if !Path::new(MANIFEST).exists() {
        return Err(format!(
            "the external peers are not here ({MANIFEST}): run the benchmark from a kvs \
             source tree, or pass --no-external-peers"
        ));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tasks: Vec<String> = options.tasks.iter().map(usize::to_string).collect();
    let workloads: Vec<String> = options.workloads.iter().map(|w| w.name()).collect();
    let output = tokio::process::Command::new(cargo)
        .args([
            "run",
            "--release",
            "--quiet",
            "--manifest-path",
            MANIFEST,
            "--",
        ])
        .arg("--keys")
        .arg(keys.to_string())
        .arg("--duration-ms")
        .arg(options.duration.as_millis().to_string())
        .arg("--rounds")
        .arg(options.rounds.max(1).to_string())
        .arg("--tasks")
        .arg(tasks.join(","))
        .arg("--workloads")
        .arg(workloads.join(","))
        .args(backend)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("starting cargo for bench/peers: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "bench/peers failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bench/peers printed {l:?}: {e}")))
        .collect()
}
