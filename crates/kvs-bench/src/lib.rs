//! `kvs bench`: kvs measured against the raw clients of its engines and
//! against the libraries a user would pick instead, in one run, on the same
//! data, files and servers.
//!
//! A run loads each subject (kvs or a peer) with the same keys, then runs
//! every [`Workload`] at each task count and prints one result line per
//! subject and one comparison line (kvs / peer) per peer:
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! let options = kvs_bench::Options::quick();
//! let report = kvs_bench::run(&options).await?;
//! for comparison in &report.comparisons {
//!     println!("{} {} ×{:?}", comparison.backend, comparison.peer, comparison.ratio);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The peers whose SQLite service is built on sqlx (OpenDAL's and keyv's)
//! cannot share a build with rusqlite (both link `sqlite3`), so they live in
//! a crate of their own, `bench/sqlx-peers`, which the run builds and
//! starts as a child process and reads JSON lines from.

pub mod measure;
pub mod report;
pub mod subject;
pub mod workload;

#[cfg(feature = "suite")]
mod external;
#[cfg(feature = "suite")]
pub mod subjects;
#[cfg(feature = "suite")]
mod suite;

pub use measure::{Measurement, Run};
pub use report::{Comparison, Line};
pub use subject::{OpError, OpResult, Subject};
pub use workload::Workload;

#[cfg(feature = "suite")]
pub use suite::{run, Options, Report};

use std::sync::Arc;
use std::time::Duration;

/// Loads `subject` and runs every workload of `workloads` at each task
/// count, calling `done` after each run; returns one line per run.
#[allow(clippy::too_many_arguments)]
pub async fn run_subject<S: Subject>(
    backend: &str,
    name: &str,
    class: &str,
    settings: &str,
    subject: S,
    workloads: &[Workload],
    tasks: &[usize],
    keys: usize,
    duration: Duration,
    mut done: impl FnMut(&Line),
) -> Result<Vec<Line>, String> {
    measure::load(&subject, keys)
        .await
        .map_err(|e| format!("loading {name} ({backend}): {e:?}"))?;
    let subject = Arc::new(subject);
    let mut lines = Vec::new();
    for &workload in workloads {
        for &t in tasks {
            let run = Run {
                workload,
                tasks: t,
                keys,
                duration,
            };
            let (measurement, unsupported) = match measure::measure(&subject, run).await {
                Ok(m) => (Some(m), None),
                Err(OpError::Unsupported(why)) => (None, Some(why.to_owned())),
                Err(OpError::Failed(e)) => {
                    return Err(format!("{name} ({backend}) {workload} × {t}: {e}"))
                }
            };
            let line = Line {
                kind: "result".into(),
                backend: backend.into(),
                subject: name.into(),
                class: class.into(),
                settings: settings.into(),
                workload: workload.name(),
                tasks: t,
                measurement,
                unsupported,
            };
            done(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}
