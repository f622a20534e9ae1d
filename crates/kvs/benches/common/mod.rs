//! What every benchmark of this crate shares: timing, formatting and the
//! ratio table. Each benchmark runs kvs and the raw client it is compared
//! with in the same process, on the same data, one after the other.

#![allow(dead_code)] // not every benchmark uses every helper

use std::time::Instant;

/// A pseudo-random permutation of `0..n`, the same for every contender
/// given the same `seed`.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ seed;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// Best throughput, in operations per second, of `rounds` runs of `run`,
/// which performs `ops` operations each time and is told the round number
/// (so that each round can visit keys in a new order: repeating one order
/// would let caches learn it).
pub fn best_rate(rounds: usize, ops: usize, mut run: impl FnMut(usize)) -> f64 {
    (0..rounds)
        .map(|round| {
            let start = Instant::now();
            run(round);
            ops as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// This process's resident memory, in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

pub fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k/s", rate / 1e3)
    } else {
        format!("{rate:.1} /s")
    }
}

/// One comparison: kvs and a peer on the same workload.
pub struct Row {
    pub workload: String,
    pub kvs: f64,
    pub peer: String,
    pub peer_rate: f64,
    /// The least kvs/peer ratio we aim for, if any.
    pub target: Option<f64>,
}

impl Row {
    pub fn new(
        workload: impl Into<String>,
        kvs: f64,
        peer: impl Into<String>,
        peer_rate: f64,
        target: Option<f64>,
    ) -> Row {
        Row {
            workload: workload.into(),
            kvs,
            peer: peer.into(),
            peer_rate,
            target,
        }
    }
}

pub fn print_rows(rows: &[Row]) {
    let w = rows
        .iter()
        .map(|r| r.workload.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let p = rows.iter().map(|r| r.peer.len()).max().unwrap_or(4).max(4);
    println!(
        "| {:<w$} | {:>12} | {:<p$} | {:>12} | kvs/peer | target |",
        "workload", "kvs", "peer", "peer rate"
    );
    println!(
        "|{}|--------------|{}|--------------|----------|--------|",
        "-".repeat(w + 2),
        "-".repeat(p + 2)
    );
    for r in rows {
        let ratio = r.kvs / r.peer_rate;
        let target = match r.target {
            Some(t) if ratio >= t => format!(">= {t} ok"),
            Some(t) => format!(">= {t} MISSED"),
            None => "-".into(),
        };
        println!(
            "| {:<w$} | {:>12} | {:<p$} | {:>12} | {:>7.2}x | {target} |",
            r.workload,
            fmt_rate(r.kvs),
            r.peer,
            fmt_rate(r.peer_rate),
            ratio
        );
    }
}
