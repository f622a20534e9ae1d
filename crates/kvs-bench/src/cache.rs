//! `kvs bench --cache --store redis://…`: the cache of issue 16 in one run.
//!
//! - **Tiered hits**: `get_100B` through a tiered store (a 100,000-entry
//!   memory tier over the Redis of `--store`, its bus on the same server),
//!   every key read once before, against a plain Redis `get` of the same
//!   keys on the same server (target ≥ 20×).
//! - **The L1 hit path** against moka's `get`, both bounded to the same
//!   capacity, both holding every key (target ≥ 0.9×).
//! - **Hit ratio** of the bounded memory store (CLOCK), moka (W-TinyLFU)
//!   and a plain LRU on one Zipf(0.99) trace of 1,000,000 requests over
//!   100,000 keys with room for 10,000: each request a `get`, each miss a
//!   `set`. Printed side by side; no target.
//! - **A stampede**: 1,000 callers of `get_or_set` on one missing key
//!   with a 10 ms loader, in one process over the Redis store: loads run
//!   (target 1) and the callers' p99 wait (target ≤ 15 ms); then the same
//!   with the lease across processes (`distributed`).
//!
//! Like for like: the bare and tiered stores are the same server, keys and
//! values, measured by the suite's own harness (each call timed), taking
//! turns, best of `rounds`.

use crate::measure::{self, Run};
use crate::subjects::kvs::Kvs;
use crate::subjects::memory::MokaPeer;
use crate::workload::{self, Rng, Workload};
use kvs::cache::{Cache, Lease, Tiered};
use kvs::layer::LayerExt;
use kvs::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheLine {
    /// What is measured.
    pub case: String,
    /// The figure: a ratio, a hit ratio, a count or milliseconds.
    pub figure: f64,
    /// What the figure is measured in.
    pub unit: &'static str,
    /// The raw rates behind a ratio (kvs side, other side), calls/s.
    pub rates: Option<(f64, f64)>,
    /// The target and whether the figure must be at least (`true`) or
    /// at most (`false`) it; `None`: printed for comparison only.
    pub target: Option<(f64, bool)>,
}

impl CacheLine {
    /// Whether the line meets its target (a line without one does).
    pub fn met(&self) -> bool {
        match self.target {
            Some((target, true)) => self.figure >= target,
            Some((target, false)) => self.figure <= target,
            None => true,
        }
    }
}

const TRACE_REQUESTS: usize = 1_000_000;
const TRACE_KEYS: usize = 100_000;
const TRACE_ROOM: usize = 10_000;
const STAMPEDE: usize = 1_000;
const LOADER: Duration = Duration::from_millis(10);

/// Every line, on the Redis at `url`.
pub async fn run(
    url: &str,
    duration: Duration,
    rounds: usize,
    keys: usize,
) -> Result<Vec<CacheLine>, String> {
    let mut lines = Vec::new();
    let mut config = kvs::Config::from_url(url).map_err(|e| e.to_string())?;
    config.namespace = format!("bench-cache-{}", std::process::id());
    let redis = kvs::open(&config).await.map_err(|e| e.to_string())?;
    redis.clear().await.map_err(|e| e.to_string())?;
    let tiered_layer = Tiered::bounded(Some(keys.max(TRACE_ROOM)), None)
        .map_err(|e| e.to_string())?
        .bus(url, &config.namespace)
        .map_err(|e| e.to_string())?;
    let tiered = redis.clone().layer(tiered_layer);
    let get = Run {
        workload: Workload::Get(workload::SMALL),
        tasks: 1,
        keys,
        duration,
    };

    // Tiered hits against Redis gets.
    let bare = Arc::new(Kvs(redis.clone()));
    measure::load(&*bare, keys)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let layered = Arc::new(Kvs(tiered.clone()));
    warm(&tiered, keys).await?;
    let (b, l) = measure::pair(rounds, get, &bare, &layered).await?;
    lines.push(CacheLine {
        case: "tiered (memory over Redis, with its bus) get_100B hits vs Redis get_100B".into(),
        figure: l / b,
        unit: "×",
        rates: Some((l, b)),
        target: Some((20.0, true)),
    });

    // The L1 hit path against moka's get, same capacity, every key held.
    let moka = Arc::new(MokaPeer::bounded(keys.max(TRACE_ROOM) as u64));
    measure::load(&*moka, keys)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (m, l) = measure::pair(rounds, get, &moka, &layered).await?;
    lines.push(CacheLine {
        case: "tiered L1 hit path get_100B vs moka::future::Cache get (both bounded)".into(),
        figure: l / m,
        unit: "×",
        rates: Some((l, m)),
        target: Some((0.9, true)),
    });

    // Hit ratios on one Zipf trace.
    let trace = zipf_trace(TRACE_REQUESTS, TRACE_KEYS, 0.99);
    for (name, ratio) in [
        (
            "kvs bounded memory store (CLOCK)",
            clock_hit_ratio(&trace).await?,
        ),
        ("moka::sync::Cache (W-TinyLFU)", moka_hit_ratio(&trace)),
        ("plain LRU", lru_hit_ratio(&trace)),
    ] {
        lines.push(CacheLine {
            case: format!(
                "hit ratio, Zipf(0.99), {TRACE_REQUESTS} requests over {TRACE_KEYS} keys, room for {TRACE_ROOM}: {name}"
            ),
            figure: ratio,
            unit: "hits/requests",
            rates: None,
            target: None,
        });
    }

    // Stampedes.
    for (name, cache) in [
        ("in one process", Cache::new(redis.clone())),
        (
            "with the lease (distributed)",
            Cache::builder(redis.clone())
                .distributed(Lease {
                    poll: Duration::from_millis(1),
                    max_poll: Duration::from_millis(5),
                    ..Lease::default()
                })
                .build(),
        ),
    ] {
        let (loads, p99) = stampede(&cache, &format!("stampede-{}", lines.len())).await?;
        lines.push(CacheLine {
            case: format!(
                "get_or_set, {STAMPEDE} callers on one missing key, 10 ms loader, {name}: loads"
            ),
            figure: loads as f64,
            unit: "loads",
            rates: None,
            target: Some((1.0, false)),
        });
        lines.push(CacheLine {
            case: format!(
                "get_or_set, {STAMPEDE} callers on one missing key, 10 ms loader, {name}: p99 wait"
            ),
            figure: p99.as_secs_f64() * 1e3,
            unit: "ms",
            rates: None,
            target: Some((15.0, false)),
        });
    }
    redis.clear().await.map_err(|e| e.to_string())?;
    tiered.close().await.map_err(|e| e.to_string())?;
    Ok(lines)
}

/// Reads every key once through `store`, so each is in its local tier.
async fn warm(store: &Arc<dyn Store>, keys: usize) -> Result<(), String> {
    // The bus subscribes in the background; until it has, reads pass by L1.
    let deadline = Instant::now() + Duration::from_secs(10);
    let probe = workload::small_key(0);
    loop {
        store.get(&probe).await.map_err(|e| e.to_string())?;
        let before = Instant::now();
        store.get(&probe).await.map_err(|e| e.to_string())?;
        if before.elapsed() < Duration::from_micros(20) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..keys {
        store
            .get(&workload::small_key(i))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `requests` key numbers below `keys`, rank r drawn with probability
/// proportional to 1 / r^s.
fn zipf_trace(requests: usize, keys: usize, s: f64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(keys);
    let mut total = 0f64;
    for rank in 1..=keys {
        total += 1.0 / (rank as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = Rng::new(99);
    (0..requests)
        .map(|_| {
            let u = rng.below(1 << 30) as f64 / (1u64 << 30) as f64 * total;
            cdf.partition_point(|&c| c < u).min(keys - 1) as u32
        })
        .collect()
}

async fn clock_hit_ratio(trace: &[u32]) -> Result<f64, String> {
    let store = kvs::MemoryStore::new("trace", kvs::MemoryConfig::bounded(TRACE_ROOM))
        .map_err(|e| e.to_string())?;
    let mut hits = 0usize;
    for &k in trace {
        let key = format!("k{k}");
        match store.get(&key).await {
            Ok(_) => hits += 1,
            Err(kvs::Error::NotFound) => store
                .set(&key, b"v", None)
                .await
                .map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(hits as f64 / trace.len() as f64)
}

fn moka_hit_ratio(trace: &[u32]) -> f64 {
    let cache: moka::sync::Cache<u32, ()> = moka::sync::Cache::new(TRACE_ROOM as u64);
    let mut hits = 0usize;
    for &k in trace {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, ());
        }
    }
    hits as f64 / trace.len() as f64
}

/// The textbook LRU: recency ticks in an ordered map.
fn lru_hit_ratio(trace: &[u32]) -> f64 {
    let mut tick_of: HashMap<u32, u64> = HashMap::new();
    let mut by_tick: BTreeMap<u64, u32> = BTreeMap::new();
    let mut hits = 0usize;
    for (tick, &k) in trace.iter().enumerate() {
        let tick = tick as u64;
        if let Some(old) = tick_of.insert(k, tick) {
            hits += 1;
            by_tick.remove(&old);
        } else if tick_of.len() > TRACE_ROOM {
            if let Some((_, victim)) = by_tick.pop_first() {
                tick_of.remove(&victim);
            }
        }
        by_tick.insert(tick, k);
    }
    hits as f64 / trace.len() as f64
}

/// `STAMPEDE` callers at once on `key`: how many loads ran, and the p99
/// of the callers' waits.
async fn stampede(cache: &Cache, key: &str) -> Result<(usize, Duration), String> {
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let callers: Vec<_> = (0..STAMPEDE)
        .map(|_| {
            let (cache, loads, key) = (cache.clone(), Arc::clone(&loads), key.to_owned());
            tokio::spawn(async move {
                let value = cache
                    .get_or_set(&key, Some(Duration::from_secs(60)), move || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOADER).await;
                        Ok::<_, kvs::Error>("loaded")
                    })
                    .await;
                (value.map(drop), start.elapsed())
            })
        })
        .collect();
    let mut waits = Vec::with_capacity(STAMPEDE);
    for caller in callers {
        let (result, waited) = caller.await.map_err(|e| e.to_string())?;
        result.map_err(|e| e.to_string())?;
        waits.push(waited);
    }
    waits.sort_unstable();
    let p99 = waits[(waits.len() * 99).div_ceil(100) - 1];
    Ok((loads.load(Ordering::SeqCst), p99))
}

/// The lines as a table.
pub fn table(lines: &[CacheLine]) -> String {
    let mut out = String::from("the cache (issue 16), one run\n");
    for line in lines {
        let rates = line
            .rates
            .map(|(a, b)| format!(" ({a:.0} vs {b:.0} calls/s)"))
            .unwrap_or_default();
        let target = match line.target {
            Some((t, true)) => format!(
                " (target ≥ {t}): {}",
                if line.met() { "met" } else { "NOT met" }
            ),
            Some((t, false)) => format!(
                " (target ≤ {t}): {}",
                if line.met() { "met" } else { "NOT met" }
            ),
            None => String::new(),
        };
        out += &format!(
            "  {:<100} {:.3} {}{rates}{target}\n",
            line.case, line.figure, line.unit
        );
    }
    out
}
