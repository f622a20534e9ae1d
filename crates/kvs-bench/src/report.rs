//! What a run prints: one [`Result`](Line) per subject, workload and task
//! count, and one [`Comparison`] per peer against kvs, as a table or as
//! JSON lines.

use crate::measure::Measurement;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One measured subject on one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// Always `"result"`.
    pub kind: String,
    /// `memory`, `sqlite`, `leveldb`, `redis`, `dynamodb`.
    pub backend: String,
    /// `kvs`, or the peer's name (`dashmap`, `opendal`, ...).
    pub subject: String,
    /// What is compared with what: kvs and a peer are compared when their
    /// classes match (say `sqlite-full` for durable SQLite).
    pub class: String,
    /// The settings, in words (`WAL, synchronous=FULL`).
    pub settings: String,
    /// The workload's name.
    pub workload: String,
    /// Concurrent tasks.
    pub tasks: usize,
    /// The measurement, or `None` if the subject cannot do the workload.
    #[serde(flatten)]
    pub measurement: Option<Measurement>,
    /// Why there is no measurement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// The subject name of kvs on Redis without the ordered index, in a run
/// with `index=true`.
pub const KVS_WITHOUT_INDEX: &str = "kvs-scan";

/// kvs with the Redis index against kvs without it: listing and counting
/// must gain 100× (they read a sorted set instead of a `SCAN` of the
/// server), writes may lose at most 30% at one task and half at many (each
/// is still one round trip; the server does more).
pub fn index_gain(lines: &[Line]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for plain in lines.iter().filter(|l| l.subject == KVS_WITHOUT_INDEX) {
        let target = if plain.workload.starts_with("list") || plain.workload.starts_with("count") {
            100.0
        } else if plain.workload.starts_with("set") {
            if plain.tasks == 1 {
                0.7
            } else {
                0.5
            }
        } else {
            continue;
        };
        let Some(indexed) = lines.iter().find(|l| {
            l.subject == "kvs"
                && l.class == plain.class
                && l.workload == plain.workload
                && l.tasks == plain.tasks
        }) else {
            continue;
        };
        let (Some(k), Some(p)) = (&indexed.measurement, &plain.measurement) else {
            continue;
        };
        out.push(Comparison {
            kind: "comparison".into(),
            backend: plain.backend.clone(),
            workload: plain.workload.clone(),
            tasks: plain.tasks,
            peer: KVS_WITHOUT_INDEX.into(),
            settings: plain.settings.clone(),
            kvs_ops_per_sec: k.ops_per_sec,
            peer_ops_per_sec: Some(p.ops_per_sec),
            ratio: Some(k.ops_per_sec / p.ops_per_sec),
            target,
            note: None,
        });
    }
    out
}

/// kvs against one peer on one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Always `"comparison"`.
    pub kind: String,
    /// The backend both ran on.
    pub backend: String,
    /// The workload's name.
    pub workload: String,
    /// Concurrent tasks.
    pub tasks: usize,
    /// The peer.
    pub peer: String,
    /// The settings both ran with.
    pub settings: String,
    /// kvs's throughput.
    pub kvs_ops_per_sec: f64,
    /// The peer's throughput, or `None` if it cannot do the workload.
    pub peer_ops_per_sec: Option<f64>,
    /// kvs / peer, or `None` if the peer cannot do the workload.
    pub ratio: Option<f64>,
    /// The least ratio this project aims for against this peer; `0` when
    /// the two are not comparable (the note says why).
    pub target: f64,
    /// Why the peer has no figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Comparison {
    /// Whether kvs met its target (a peer that cannot do it is a pass).
    pub fn met(&self) -> bool {
        self.ratio.is_none_or(|r| r >= self.target)
    }
}

/// The subject name of rusty-leveldb on its own defaults (writes buffered
/// in user space), measured for reference only.
pub const BUFFERED_LEVELDB: &str = "rusty-leveldb-buffered";

/// The comparisons of `lines`: every peer line against the kvs line of
/// the same backend, class, workload and task count. Raw clients must be
/// matched to 0.9×; other libraries beaten (1.0×).
pub fn compare(lines: &[Line], raw: impl Fn(&str) -> bool) -> Vec<Comparison> {
    let mut out = Vec::new();
    // kvs without the Redis index is not a peer: `index_gain` compares it.
    for peer in lines
        .iter()
        .filter(|l| l.subject != "kvs" && l.subject != KVS_WITHOUT_INDEX)
    {
        let Some(kvs) = lines.iter().find(|l| {
            l.subject == "kvs"
                && l.backend == peer.backend
                && l.class == peer.class
                && l.workload == peer.workload
                && l.tasks == peer.tasks
        }) else {
            continue;
        };
        let Some(kvs_m) = &kvs.measurement else {
            continue;
        };
        let peer_rate = peer.measurement.as_ref().map(|m| m.ops_per_sec);
        // rusty-leveldb on its own defaults keeps writes in a user-space
        // buffer, where kvs flushes every commit to the OS: a reference,
        // not a target (the like-for-like subject runs on kvs's Env).
        let unlike = (peer.subject == BUFFERED_LEVELDB).then(|| {
            "not like for like: rusty-leveldb's defaults buffer writes in user space; kvs flushes every commit to the OS"
                .to_owned()
        });
        out.push(Comparison {
            kind: "comparison".into(),
            backend: peer.backend.clone(),
            workload: peer.workload.clone(),
            tasks: peer.tasks,
            peer: peer.subject.clone(),
            settings: peer.settings.clone(),
            kvs_ops_per_sec: kvs_m.ops_per_sec,
            peer_ops_per_sec: peer_rate,
            ratio: peer_rate.map(|p| kvs_m.ops_per_sec / p),
            target: match (&unlike, raw(&peer.subject)) {
                (Some(_), _) => 0.0,
                (None, true) => 0.9,
                (None, false) => 1.0,
            },
            note: unlike.or_else(|| peer.unsupported.clone()),
        });
    }
    out
}

/// A rate for people: `1.23 M/s`, `45.6 k/s`.
pub fn rate(ops_per_sec: f64) -> String {
    if ops_per_sec >= 1e6 {
        format!("{:.2} M/s", ops_per_sec / 1e6)
    } else if ops_per_sec >= 1e3 {
        format!("{:.1} k/s", ops_per_sec / 1e3)
    } else {
        format!("{ops_per_sec:.1} /s")
    }
}

/// The table of every measurement.
pub fn results_table(lines: &[Line]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<12} {:<11} {:>5} {:>12} {:>10} {:>10}  settings",
        "backend", "subject", "workload", "tasks", "ops/s", "p50 µs", "p99 µs"
    );
    for l in lines {
        match &l.measurement {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "{:<9} {:<12} {:<11} {:>5} {:>12} {:>10.1} {:>10.1}  {}",
                    l.backend,
                    l.subject,
                    l.workload,
                    l.tasks,
                    rate(m.ops_per_sec),
                    m.p50_us,
                    m.p99_us,
                    l.settings
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<9} {:<12} {:<11} {:>5} {:>12} {:>10} {:>10}  {}",
                    l.backend,
                    l.subject,
                    l.workload,
                    l.tasks,
                    "n/a",
                    "",
                    "",
                    l.unsupported.as_deref().unwrap_or("")
                );
            }
        }
    }
    out
}

/// The table of every comparison, with a verdict against its target.
pub fn comparisons_table(comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<11} {:>5} {:<13} {:>12} {:>12} {:>7} {:>6}  settings",
        "backend", "workload", "tasks", "peer", "kvs", "peer", "ratio", ""
    );
    for c in comparisons {
        let (peer, ratio) = match (c.peer_ops_per_sec, c.ratio) {
            (Some(p), Some(r)) => (rate(p), format!("{r:.2}×")),
            _ => ("n/a".to_owned(), "—".to_owned()),
        };
        let verdict = match c.ratio {
            None => "",
            Some(_) if c.target == 0.0 => "n/c",
            Some(_) if c.met() => "ok",
            Some(_) => "MISSED",
        };
        let settings = match &c.note {
            Some(note) => format!("{} ({note})", c.settings),
            None => c.settings.clone(),
        };
        let _ = writeln!(
            out,
            "{:<9} {:<11} {:>5} {:<13} {:>12} {:>12} {:>7} {:>6}  {}",
            c.backend,
            c.workload,
            c.tasks,
            c.peer,
            rate(c.kvs_ops_per_sec),
            peer,
            ratio,
            verdict,
            settings
        );
    }
    out
}
