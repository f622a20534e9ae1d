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
//! Some peers cannot share a build with kvs: OpenDAL's and keyv's SQLite
//! services are built on sqlx, whose `libsqlite3-sys` cannot be linked
//! beside rusqlite's (both link `sqlite3`), and openkeyv's DynamoDB store
//! pins `aws-config` to an older release than kvs uses. They live in a
//! crate of their own, `bench/peers`, with its own lockfile, which the run
//! builds and starts as a child process and reads JSON lines from. It uses
//! this crate with only the `libraries` feature (the library subjects, the
//! workloads, the measuring loop and the report).

#[cfg(feature = "suite")]
pub mod cache;
#[cfg(feature = "suite")]
pub mod copy;
#[cfg(feature = "suite")]
pub mod layers;
pub mod measure;
pub mod report;
pub mod subject;
pub mod workload;

#[cfg(feature = "suite")]
mod external;
#[cfg(feature = "libraries")]
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

/// What [`run_subject`] measures: every workload at every task count, on
/// `keys` keys, each for `duration`, best of `rounds`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// The task counts.
    pub tasks: Vec<usize>,
    /// Keys in the main key space.
    pub keys: usize,
    /// How long each measurement runs.
    pub duration: Duration,
    /// How many times each is taken; the best counts.
    pub rounds: usize,
}

/// Loads `subject` and runs `plan` on it, calling `done` after each
/// measurement; returns one line per workload and task count. A subject
/// measured alone (in `bench/peers`) takes its rounds back to back.
pub async fn run_subject<S: Subject>(
    backend: &str,
    name: &str,
    class: &str,
    settings: &str,
    subject: S,
    plan: &Plan,
    mut done: impl FnMut(&Line),
) -> Result<Vec<Line>, String> {
    measure::load(&subject, plan.keys)
        .await
        .map_err(|e| format!("loading {name} ({backend}): {e:?}"))?;
    let subject = Arc::new(subject);
    let mut lines = Vec::new();
    for &workload in &plan.workloads {
        for &t in &plan.tasks {
            let run = Run {
                workload,
                tasks: t,
                keys: plan.keys,
                duration: plan.duration,
            };
            let mut best: Option<Measurement> = None;
            let mut unsupported = None;
            for _ in 0..plan.rounds.max(1) {
                match measure::measure(&subject, run).await {
                    Ok(m) => {
                        if best.as_ref().is_none_or(|b| m.ops_per_sec > b.ops_per_sec) {
                            best = Some(m);
                        }
                    }
                    Err(OpError::Unsupported(why)) => {
                        unsupported = Some(why.to_owned());
                        break;
                    }
                    Err(OpError::Failed(e)) => {
                        return Err(format!("{name} ({backend}) {workload} × {t}: {e}"))
                    }
                }
            }
            let line = Line {
                kind: "result".into(),
                backend: backend.into(),
                subject: name.into(),
                class: class.into(),
                settings: settings.into(),
                workload: workload.name(),
                tasks: t,
                measurement: best,
                unsupported,
            };
            done(&line);
            lines.push(line);
        }
    }
    Ok(lines)
}
