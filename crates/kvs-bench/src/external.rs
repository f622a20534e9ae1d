//! The sqlx-based peers (OpenDAL's and keyv's SQLite services), which
//! cannot be built with rusqlite (both link `sqlite3`): `bench/sqlx-peers`,
//! a crate outside the workspace with its own lockfile, built and started
//! by `cargo run` as a child process that prints [`Line`]s as JSON.

use crate::report::Line;
use crate::suite::Options;
use std::path::Path;
use std::process::Stdio;

/// The child crate's manifest, in the source tree this binary was built from.
const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../bench/sqlx-peers/Cargo.toml"
);

/// Builds and runs the sqlx peers with the same keys, durations and task
/// counts, their files in `dir`; returns their result lines.
pub async fn sqlx_peers(options: &Options, keys: usize, dir: &Path) -> Result<Vec<Line>, String> {
    if !Path::new(MANIFEST).exists() {
        return Err(format!(
            "the sqlx peers are not here ({MANIFEST}): run the benchmark from a kvs \
             source tree, or pass --no-sqlx-peers"
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
        .arg("--tasks")
        .arg(tasks.join(","))
        .arg("--workloads")
        .arg(workloads.join(","))
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("starting cargo for bench/sqlx-peers: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "bench/sqlx-peers failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| format!("bench/sqlx-peers printed {l:?}: {e}"))
        })
        .collect()
}
