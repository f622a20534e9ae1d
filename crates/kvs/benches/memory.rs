//! The memory backend against raw `dashmap::DashMap` and `moka::future::Cache`,
//! on the same keys in the same run, printed as ratios.
//!
//! `cargo bench -p kvs-store --bench memory` (add `-- --quick` for a short run).
//!
//! Workloads, over 1,000,000 keys of 16 bytes with 100-byte values:
//! - `get` of present keys in a random order, one task;
//! - `set` overwriting present keys in a random order, one task;
//! - `list`/`count` of a prefix matching 100 keys (DashMap and moka keep no
//!   order, so they must scan every key);
//! - the expiry sweep with 1,000 expired keys among 1,000,000;
//! - resident memory of 1,000,000 entries in a fresh process.
//!
//! kvs is always called through `Arc<dyn Store>`, as applications call it.

use bytes::Bytes;
use common::{best_rate, rss_bytes, shuffled, Row};
use dashmap::DashMap;
use kvs::expiry::ManualClock;
use kvs::{MemoryConfig, MemoryStore, Store};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

const KEYS: usize = 1_000_000;
const VALUE_LEN: usize = 100;

fn key(i: usize) -> String {
    format!("k{i:015}")
}

/// The prefix shared by keys `100 * j .. 100 * j + 99`.
fn prefix(j: usize) -> String {
    format!("k{j:013}")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 3 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let value = vec![0xAB_u8; VALUE_LEN];
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let orders: Vec<Vec<usize>> = (0..rounds as u64).map(|r| shuffled(KEYS, r)).collect();

    // Resident memory first, while the process is fresh.
    let before = rss_bytes();
    let kvs_store: Arc<dyn Store> =
        Arc::new(MemoryStore::new("bench", MemoryConfig::default()).expect("memory store"));
    rt.block_on(async {
        for k in &keys {
            kvs_store.set(k, &value, None).await.expect("set");
        }
    });
    let rss = rss_bytes().saturating_sub(before);

    let dash: DashMap<String, Bytes> = DashMap::new();
    for k in &keys {
        dash.insert(k.clone(), Bytes::copy_from_slice(&value));
    }
    let moka: moka::future::Cache<String, Bytes> = moka::future::Cache::new(KEYS as u64 * 2);
    rt.block_on(async {
        for k in &keys {
            moka.insert(k.clone(), Bytes::copy_from_slice(&value)).await;
        }
        moka.run_pending_tasks().await;
    });

    let mut rows = Vec::new();

    // get
    let kvs_get = best_rate(rounds, KEYS, |round| {
        rt.block_on(async {
            for &i in &orders[round] {
                black_box(kvs_store.get(&keys[i]).await.expect("get"));
            }
        })
    });
    let dash_get = best_rate(rounds, KEYS, |round| {
        for &i in &orders[round] {
            black_box(dash.get(&keys[i]).map(|v| v.clone()));
        }
    });
    let moka_get = best_rate(rounds, KEYS, |round| {
        rt.block_on(async {
            for &i in &orders[round] {
                black_box(moka.get(&keys[i]).await);
            }
        })
    });
    rows.push(Row::new(
        "get (hit)",
        kvs_get,
        "dashmap",
        dash_get,
        Some(0.7),
    ));
    rows.push(Row::new("get (hit)", kvs_get, "moka", moka_get, None));

    // set (overwrite)
    let kvs_set = best_rate(rounds, KEYS, |round| {
        rt.block_on(async {
            for &i in &orders[round] {
                kvs_store.set(&keys[i], &value, None).await.expect("set");
            }
        })
    });
    let dash_set = best_rate(rounds, KEYS, |round| {
        for &i in &orders[round] {
            dash.insert(keys[i].clone(), Bytes::copy_from_slice(&value));
        }
    });
    let moka_set = best_rate(rounds, KEYS, |round| {
        rt.block_on(async {
            for &i in &orders[round] {
                moka.insert(keys[i].clone(), Bytes::copy_from_slice(&value))
                    .await;
            }
        })
    });
    rows.push(Row::new(
        "set (overwrite)",
        kvs_set,
        "dashmap",
        dash_set,
        Some(0.7),
    ));
    rows.push(Row::new("set (overwrite)", kvs_set, "moka", moka_set, None));

    // list / count of 100 matches among 1M keys
    let lists = if quick { 200 } else { 2_000 };
    let prefixes: Vec<String> = shuffled(KEYS / 100, 7)
        .into_iter()
        .take(lists)
        .map(prefix)
        .collect();
    let kvs_list = best_rate(rounds, lists, |_| {
        rt.block_on(async {
            for p in &prefixes {
                let found = kvs_store.list(p).await.expect("list");
                assert_eq!(found.len(), 100);
                black_box(found);
            }
        })
    });
    let kvs_count = best_rate(rounds, lists, |_| {
        rt.block_on(async {
            for p in &prefixes {
                assert_eq!(kvs_store.count(p).await.expect("count"), 100);
            }
        })
    });
    // The raw maps keep no order: a prefix query scans every key and sorts.
    let scans = if quick { 2 } else { 5 };
    let dash_list = best_rate(1, scans, |_| {
        for p in prefixes.iter().take(scans) {
            let mut found: Vec<String> = dash
                .iter()
                .filter(|e| e.key().starts_with(p.as_str()))
                .map(|e| e.key().clone())
                .collect();
            found.sort_unstable();
            assert_eq!(found.len(), 100);
            black_box(found);
        }
    });
    let moka_list = best_rate(1, scans, |_| {
        for p in prefixes.iter().take(scans) {
            let mut found: Vec<String> = moka
                .iter()
                .filter(|(k, _)| k.starts_with(p.as_str()))
                .map(|(k, _)| (*k).clone())
                .collect();
            found.sort_unstable();
            assert_eq!(found.len(), 100);
            black_box(found);
        }
    });
    rows.push(Row::new(
        "list 100 of 1M",
        kvs_list,
        "dashmap (scan)",
        dash_list,
        None,
    ));
    rows.push(Row::new(
        "list 100 of 1M",
        kvs_list,
        "moka (scan)",
        moka_list,
        None,
    ));

    // The sweep: 1,000 expired among 1,000,000.
    drop(dash);
    drop(moka);
    let clock = ManualClock::new(1_700_000_000_000);
    let swept = MemoryStore::with_clock("sweep", MemoryConfig::default(), Arc::new(clock.clone()))
        .expect("memory store");
    rt.block_on(async {
        for (n, k) in keys.iter().enumerate() {
            let ttl = (n % 1000 == 0).then_some(Duration::from_secs(1));
            swept.set(k, &value, ttl).await.expect("set");
        }
    });
    clock.advance(Duration::from_secs(2));
    let start = Instant::now();
    let removed = swept.purge_expired();
    let sweep_time = start.elapsed();
    assert_eq!(removed, 1_000);

    println!();
    println!(
        "kvs memory backend vs raw clients ({KEYS} keys of 16 B, values of {VALUE_LEN} B, 1 task)"
    );
    println!();
    common::print_rows(&rows);
    println!();
    let list_latency = Duration::from_secs_f64(1.0 / kvs_list);
    let count_latency = Duration::from_secs_f64(1.0 / kvs_count);
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "list of 100 among 1M:  {:>8.1} us   (target < 100 us: {})",
        list_latency.as_secs_f64() * 1e6,
        verdict(list_latency < Duration::from_micros(100))
    );
    println!(
        "count of 100 among 1M: {:>8.1} us   (target < 100 us: {})",
        count_latency.as_secs_f64() * 1e6,
        verdict(count_latency < Duration::from_micros(100))
    );
    println!(
        "sweep of 1,000 expired among 1M: {:.2} ms   (target < 5 ms: {})",
        sweep_time.as_secs_f64() * 1e3,
        verdict(sweep_time < Duration::from_millis(5))
    );
    println!(
        "resident memory for 1M entries:  {:.1} MB   (target < 250 MB: {})",
        rss as f64 / 1e6,
        verdict(rss < 250_000_000)
    );
}
