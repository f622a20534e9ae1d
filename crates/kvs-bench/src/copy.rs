//! `kvs bench --copy`: `kvs::copy` from a SQLite file into a Redis server,
//! against the same Redis taking the same keys from `set_many` alone.
//!
//! Like for like: both write through kvs's `RedisStore` into the same
//! namespace, in batches of the same size, one batch at a time, values of
//! the same size; the copy also reads each batch from SQLite (the next one
//! while the current one is written) and each key's TTL. The ratio says
//! what moving a store costs beyond writing it. A second line does the same
//! with a TTL on every key, where the copy groups each batch by TTL.

use kvs::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The namespace both sides write on the server; cleared before and after.
const NAMESPACE: &str = "kvs-bench-copy";

/// One measured case.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyLine {
    /// `"no TTL"` or `"TTL on every key"`.
    pub case: &'static str,
    /// Keys moved per run.
    pub keys: usize,
    /// Keys a second through `kvs::copy`, SQLite to Redis (best round).
    pub copy_per_sec: f64,
    /// Keys a second through Redis `set_many` alone (best round).
    pub set_many_per_sec: f64,
}

impl CopyLine {
    /// `copy / set_many`.
    pub fn ratio(&self) -> f64 {
        self.copy_per_sec / self.set_many_per_sec
    }
}

/// The target of issue 14: the copy at 0.8× of `set_many` alone.
pub const TARGET: f64 = 0.8;

/// Runs both cases on the Redis at `redis_url` with `keys` keys of
/// `value_size` bytes, SQLite files under `dir`, `rounds` rounds taking
/// turns.
pub async fn run(
    redis_url: &str,
    dir: &std::path::Path,
    keys: usize,
    value_size: usize,
    batch: usize,
    rounds: usize,
) -> Result<Vec<CopyLine>, String> {
    let mut dst_config = kvs::Config::from_url(redis_url).map_err(|e| e.to_string())?;
    if dst_config.backend != kvs::BackendKind::Redis {
        return Err(format!(
            "--copy measures a copy into Redis; --store is a {} store",
            dst_config.backend
        ));
    }
    dst_config.namespace = NAMESPACE.into();
    let dst = kvs::open(&dst_config).await.map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for (case, ttl) in [
        ("no TTL", None),
        ("TTL on every key", Some(Duration::from_secs(3600))),
    ] {
        let src = fill_sqlite(dir, keys, value_size, ttl).await?;
        let mut best = (0f64, 0f64);
        for _ in 0..rounds.max(1) {
            dst.clear().await.map_err(|e| e.to_string())?;
            let rate = set_many_alone(&*dst, keys, value_size, batch, ttl).await?;
            best.1 = best.1.max(rate);
            dst.clear().await.map_err(|e| e.to_string())?;
            let rate = copy_once(&*src, &*dst, keys, batch).await?;
            best.0 = best.0.max(rate);
        }
        src.close().await.map_err(|e| e.to_string())?;
        lines.push(CopyLine {
            case,
            keys,
            copy_per_sec: best.0,
            set_many_per_sec: best.1,
        });
    }
    dst.clear().await.map_err(|e| e.to_string())?;
    dst.close().await.map_err(|e| e.to_string())?;
    Ok(lines)
}

/// A fresh SQLite store holding `keys` keys `key:0000000`...
async fn fill_sqlite(
    dir: &std::path::Path,
    keys: usize,
    value_size: usize,
    ttl: Option<Duration>,
) -> Result<Arc<dyn Store>, String> {
    let path = dir.join(format!("copy-src-{}.db", ttl.map_or(0, |t| t.as_secs())));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite://{}?namespace={NAMESPACE}", path.display());
    let config = kvs::Config::from_url(&url).map_err(|e| e.to_string())?;
    let src = kvs::open(&config).await.map_err(|e| e.to_string())?;
    let value = vec![b'v'; value_size];
    for start in (0..keys).step_by(10_000) {
        let names: Vec<String> = (start..keys.min(start + 10_000)).map(key).collect();
        let entries: Vec<(&str, &[u8])> = names
            .iter()
            .map(|k| (k.as_str(), value.as_slice()))
            .collect();
        // Spread TTLs, as keys written over time have: 600 distinct ones.
        let mut groups: std::collections::BTreeMap<Option<Duration>, Vec<(&str, &[u8])>> =
            std::collections::BTreeMap::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let spread = ttl.map(|t| t + Duration::from_secs((start + i) as u64 % 600));
            groups.entry(spread).or_default().push(entry);
        }
        for (ttl, group) in &groups {
            src.set_many(group, *ttl).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(src)
}

fn key(i: usize) -> String {
    format!("key:{i:07}")
}

/// Keys a second writing every key with `set_many`, `batch` at a time.
async fn set_many_alone(
    dst: &dyn Store,
    keys: usize,
    value_size: usize,
    batch: usize,
    ttl: Option<Duration>,
) -> Result<f64, String> {
    let names: Vec<String> = (0..keys).map(key).collect();
    let value = vec![b'v'; value_size];
    let started = Instant::now();
    for chunk in names.chunks(batch.max(1)) {
        let entries: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|k| (k.as_str(), value.as_slice()))
            .collect();
        dst.set_many(&entries, ttl)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(keys as f64 / started.elapsed().as_secs_f64())
}

/// Keys a second copying the whole source.
async fn copy_once(
    src: &dyn Store,
    dst: &dyn Store,
    keys: usize,
    batch: usize,
) -> Result<f64, String> {
    let options = kvs::CopyOptions::new().batch_size(batch);
    let started = Instant::now();
    let report = kvs::copy(src, dst, &options)
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    if report.copied != keys as u64 {
        return Err(format!("the copy moved {} keys of {keys}", report.copied));
    }
    Ok(keys as f64 / elapsed)
}

/// The lines as a table, with the ratio and whether it meets [`TARGET`].
pub fn table(lines: &[CopyLine]) -> String {
    let mut out = String::from(
        "kvs::copy SQLite → Redis against Redis set_many alone (same server, same batches)\n",
    );
    for line in lines {
        let ratio = line.ratio();
        out += &format!(
            "  {:<17} {} keys: copy {:>9.0} keys/s, set_many {:>9.0} keys/s, {ratio:.2}× ({})\n",
            line.case,
            line.keys,
            line.copy_per_sec,
            line.set_many_per_sec,
            if line.case == "no TTL" {
                if ratio >= TARGET {
                    format!("target {TARGET}× met")
                } else {
                    format!("target {TARGET}× NOT met")
                }
            } else {
                "no target".to_owned()
            }
        );
    }
    out
}
