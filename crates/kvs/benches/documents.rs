//! Document queries: 10,000 documents in one collection, a filter that
//! matches 1% of them, on every embedded backend.
//!
//! `cargo bench -p kvs-store --all-features --bench documents` (`-- --quick`).
//!
//! The comparison that matters is SQLite's push-down (the filter runs
//! inside SQL) against the generic scan path on the same data (every
//! document of the collection read back and filtered in Rust, which is
//! what the memory and LevelDB backends do).

use common::{best_rate, print_rows, Row};
use kvs::raw::Filter;
use kvs::{BackendKind, Config, Document, DocumentStore};
use serde_json::{json, Map, Value};
use std::sync::Arc;

mod common;

const DOCS: usize = 10_000;

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn fill(store: &Arc<dyn DocumentStore>) {
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for i in (t..DOCS).step_by(16) {
                let data = object(json!({"i": i, "bucket": i % 100, "name": format!("user {i}"),
                    "address": {"city": if i % 2 == 0 { "Paris" } else { "Lyon" }, "zip": format!("{:05}", i)}}));
                store.put("users", Document::new(format!("u{i:05}"), data)).await.expect("put");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let selective = object(json!({"bucket": 42, "address.city": "Paris"}));
    let parsed = Filter::parse(&selective).expect("filter");
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for backend in [
        BackendKind::Memory,
        BackendKind::Sqlite,
        BackendKind::LevelDb,
    ] {
        let mut config = Config::new(backend);
        config.sqlite.path = dir.path().join("docs.db");
        config.leveldb.path = dir.path().join("ldb");
        let store = rt.block_on(kvs::open_documents(&config)).expect("open");
        rt.block_on(fill(&store));
        let query = best_rate(rounds, 1, |_| {
            let found = rt
                .block_on(store.query("users", &selective))
                .expect("query");
            assert_eq!(found.len(), 100);
        });
        // The generic path on the same store: read every document, filter in Rust.
        let scan = best_rate(rounds, 1, |_| {
            let all = rt
                .block_on(store.query("users", &Map::new()))
                .expect("query");
            let found: Vec<_> = all
                .into_iter()
                .filter(|d| parsed.matches(&d.data))
                .collect();
            assert_eq!(found.len(), 100);
        });
        notes.push(format!(
            "{backend}: query of {DOCS} documents matching 1%: {:.2} ms; read-all-and-filter: {:.2} ms",
            1e3 / query,
            1e3 / scan
        ));
        if backend == BackendKind::Sqlite {
            rows.push(Row::new(
                "sqlite query, 10k docs, 1% match",
                query,
                "generic scan path",
                scan,
                Some(3.0),
            ));
        }
        rt.block_on(store.close()).expect("close");
    }
    println!();
    print_rows(&rows);
    println!();
    for note in notes {
        println!("{note}");
    }
}
