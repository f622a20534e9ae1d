//! Running one workload on one subject: `tasks` tokio tasks, each issuing
//! operations back to back until the duration is up, each operation timed
//! into a latency histogram.

use crate::subject::{OpError, OpResult, Subject};
use crate::workload::{self, Rng, Workload};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Operations completed.
    pub ops: u64,
    /// Operations per second over the whole run.
    pub ops_per_sec: f64,
    /// Median latency of one operation, in microseconds.
    pub p50_us: f64,
    /// 99th-percentile latency, in microseconds.
    pub p99_us: f64,
}

/// The shape of a run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The workload.
    pub workload: Workload,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Keys in the small space (a multiple of 100).
    pub keys: usize,
    /// How long the tasks keep issuing operations.
    pub duration: Duration,
}

/// Loads the key spaces `run`s read: `keys` small values and the 4 KB space.
pub async fn load<S: Subject>(subject: &S, keys: usize) -> OpResult<()> {
    let small = (0..keys)
        .map(|i| (workload::small_key(i), workload::value(workload::SMALL, i)))
        .collect();
    subject.load(small).await?;
    let large = (0..workload::large_keys(keys))
        .map(|i| (workload::large_key(i), workload::value(workload::LARGE, i)))
        .collect();
    subject.load(large).await
}

/// Runs `run` on `subject` (already loaded) and measures it.
pub async fn measure<S: Subject>(subject: &Arc<S>, run: Run) -> OpResult<Measurement> {
    // One call first: a subject that cannot do the workload says so here.
    one(&**subject, run, &mut Rng::new(usize::MAX), 0).await?;
    let start = Instant::now();
    let deadline = start + run.duration;
    let mut handles = Vec::with_capacity(run.tasks);
    for task in 0..run.tasks {
        let subject = Arc::clone(subject);
        handles.push(tokio::spawn(async move {
            let mut rng = Rng::new(task);
            let mut latencies = histogram();
            let mut ops = 0u64;
            loop {
                let began = Instant::now();
                // At least one call per task: on a loaded machine a task can
                // first run after a short turn is over, and a turn of no
                // calls measures nothing (a rate of 0, a ratio of none).
                if began >= deadline && ops > 0 {
                    break;
                }
                one(&*subject, run, &mut rng, ops as usize).await?;
                let took = began.elapsed().as_nanos();
                latencies.saturating_record(u64::try_from(took).unwrap_or(u64::MAX));
                ops += 1;
            }
            Ok::<_, OpError>((ops, latencies))
        }));
    }
    let mut ops = 0;
    let mut latencies = histogram();
    for handle in handles {
        let (n, h) = handle
            .await
            .map_err(|e| OpError::failed("a benchmark task", e))??;
        ops += n;
        latencies
            .add(&h)
            .map_err(|e| OpError::failed("merging latencies", e))?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Measurement {
        ops,
        ops_per_sec: ops as f64 / secs,
        p50_us: latencies.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: latencies.value_at_quantile(0.99) as f64 / 1e3,
    })
}

/// Measures `a` and `b` alternately for `rounds` rounds and keeps each
/// one's best rate, so a noisy turn on a shared machine does not decide a
/// ratio: the two are measured in the same run, like for like.
pub async fn pair<A: Subject, B: Subject>(
    rounds: usize,
    run: Run,
    a: &Arc<A>,
    b: &Arc<B>,
) -> Result<(f64, f64), String> {
    let mut best = (0f64, 0f64);
    for _ in 0..rounds.max(1) {
        let x = measure(a, run).await.map_err(|e| format!("{e:?}"))?;
        let y = measure(b, run).await.map_err(|e| format!("{e:?}"))?;
        best.0 = best.0.max(x.ops_per_sec);
        best.1 = best.1.max(y.ops_per_sec);
    }
    Ok(best)
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 1 hour at 3 significant figures: constant, valid bounds.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// One operation of `run`, checked: a read must find what the load wrote.
async fn one<S: Subject>(subject: &S, run: Run, rng: &mut Rng, n: usize) -> OpResult<()> {
    match run.workload {
        Workload::Set(len) => {
            let (key, value) = if len == workload::SMALL {
                (workload::small_key(rng.below(run.keys)), small_value(n))
            } else {
                let i = rng.below(workload::large_keys(run.keys));
                (workload::large_key(i), workload::value(len, i))
            };
            subject.set(&key, &value).await
        }
        Workload::Get(len) => {
            let key = if len == workload::SMALL {
                workload::small_key(rng.below(run.keys))
            } else {
                workload::large_key(rng.below(workload::large_keys(run.keys)))
            };
            match subject.get(&key).await? {
                Some(found) if found == len => Ok(()),
                other => Err(OpError::Failed(format!(
                    "get {key}: expected {len} bytes, found {other:?}"
                ))),
            }
        }
        Workload::Mix => {
            let key = workload::small_key(rng.below(run.keys));
            if rng.below(10) == 0 {
                subject.set(&key, &small_value(n)).await
            } else {
                match subject.get(&key).await? {
                    Some(_) => Ok(()),
                    None => Err(OpError::Failed(format!("get {key}: missing"))),
                }
            }
        }
        Workload::List | Workload::Count => {
            let prefix = workload::block_prefix(rng.below(run.keys / workload::MATCHES));
            let found = if run.workload == Workload::List {
                subject.list(&prefix).await?
            } else {
                subject.count(&prefix).await?
            };
            if found == workload::MATCHES {
                Ok(())
            } else {
                Err(OpError::Failed(format!(
                    "{} {prefix}: expected {} keys, found {found}",
                    run.workload,
                    workload::MATCHES
                )))
            }
        }
    }
}

/// A 100-byte value; which one varies so that writes are not all equal.
fn small_value(n: usize) -> Vec<u8> {
    workload::value(workload::SMALL, n)
}
