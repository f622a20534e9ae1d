//! `scan` streams a million keys without holding them: on each embedded
//! backend the process's peak memory while scanning grows far less than
//! the key set would take. One test in its own binary, so no other test's
//! allocations are counted.

use futures_util::StreamExt;
use kvs::{Config, Store};
use std::sync::Arc;

const KEYS: usize = 1_000_000;
/// The keys as `Vec<String>` would take over 40 MB; a streaming scan
/// holds one page of 1,000.
const LIMIT: usize = 8 << 20;

fn status_kb(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak-RSS counter (Linux `clear_refs` 5); false if impossible.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

async fn fill(store: &Arc<dyn Store>) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("s:{i:08}")).collect();
    for chunk in keys.chunks(10_000) {
        let entries: Vec<(&str, &[u8])> = chunk.iter().map(|k| (k.as_str(), &b""[..])).collect();
        store.set_many(&entries, None).await.expect("set_many");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_key_scan_keeps_memory_flat() {
    if status_kb("VmHWM:").is_none() || !reset_peak() {
        assert!(
            !kvs::testkit::env::require_all(),
            "cannot measure peak memory on this system"
        );
        eprintln!(
            "!!!!! SKIPPED: scan memory test — /proc/self/status or clear_refs unavailable !!!!!"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for yaml in [
        "type: memory".to_owned(),
        format!("type: sqlite\npath: {:?}", dir.path().join("scan.db")),
        format!("type: leveldb\npath: {:?}", dir.path().join("ldb")),
    ] {
        let store = kvs::open(&Config::from_yaml(&yaml).expect("config"))
            .await
            .expect("open");
        let started = std::time::Instant::now();
        fill(&store).await;
        let filled = started.elapsed();
        let started = std::time::Instant::now();
        assert!(reset_peak());
        let before = status_kb("VmRSS:").expect("VmRSS") * 1024;
        let mut stream = store.scan("s:");
        let (mut count, mut last) = (0usize, String::new());
        while let Some(key) = stream.next().await {
            let key = key.expect("scan");
            assert!(key > last, "scan must be sorted: {key} after {last}");
            last = key;
            count += 1;
        }
        drop(stream);
        let peak = status_kb("VmHWM:").expect("VmHWM") * 1024;
        let grew = peak.saturating_sub(before);
        eprintln!(
            "{yaml:?}: filled in {filled:?}, scanned {count} keys in {:?}; peak memory grew {:.1} MB",
            started.elapsed(),
            grew as f64 / 1e6
        );
        assert_eq!(count, KEYS);
        assert!(
            grew < LIMIT,
            "scanning grew memory by {grew} bytes, more than {LIMIT}"
        );
        store.close().await.expect("close");
    }
}
