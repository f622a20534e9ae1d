//! The benchmark runs end to end on the embedded backends and reports a
//! comparison for every peer, at the shortest settings (the figures of so
//! short a run mean nothing; the shape of the report is what is checked).

use kvs_bench::{Options, Workload};
use std::time::Duration;

fn tiny() -> Options {
    let mut options = Options::quick();
    options.keys = 1_000;
    options.duration = Duration::from_millis(5);
    options.tasks = vec![1, 4];
    // The external peers (bench/peers) are a separate build of minutes; `kvs bench` runs them.
    options.external = false;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_of_every_embedded_backend_gets_a_comparison() {
    let report = kvs_bench::run(&tiny()).await.expect("bench");
    let peers = [
        ("memory", "dashmap"),
        ("memory", "moka"),
        ("memory", "opendal"),
        ("memory", "openkeyv"),
        ("sqlite", "rusqlite"),
        ("leveldb", "rusty-leveldb"),
    ];
    for (backend, peer) in peers {
        for workload in Workload::ALL {
            for tasks in [1, 4] {
                let found = report.comparisons.iter().any(|c| {
                    c.backend == backend
                        && c.peer == peer
                        && c.workload == workload.name()
                        && c.tasks == tasks
                });
                assert!(
                    found,
                    "no comparison for {peer} on {backend}, {workload} × {tasks}"
                );
            }
        }
    }
    for c in &report.comparisons {
        assert!(c.kvs_ops_per_sec > 0.0, "{c:?}");
        match (c.ratio, &c.note) {
            (Some(r), None) => assert!(r > 0.0, "{c:?}"),
            (None, Some(note)) => assert!(!note.is_empty()),
            // Shown, but marked as comparing unlike things.
            (Some(_), Some(note)) => assert!(c.target == 0.0 && note.contains("not like for like")),
            _ => panic!("a comparison has a ratio or says why not: {c:?}"),
        }
    }
    // kvs lists and counts on every backend; the reads of a run found
    // every key the load wrote (a miss fails the run).
    for line in report.lines.iter().filter(|l| l.subject == "kvs") {
        assert!(line.measurement.is_some(), "kvs did not run {line:?}");
    }
    // Group commit is compared where writes are durable.
    assert!(report
        .comparisons
        .iter()
        .any(|c| c.peer == "one-at-a-time" && c.backend == "sqlite"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_store_url_is_an_error_not_a_panic() {
    let mut options = tiny();
    options.stores = vec!["nosuch://x".into()];
    let err = kvs_bench::run(&options).await.expect_err("a bad URL");
    assert!(err.contains("nosuch"), "{err}");
}

/// DynamoDB (the emulator `scripts/test` starts): kvs and the raw client
/// on the same endpoint and table, every workload compared. openkeyv runs
/// in `bench/peers`, which this test does not build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_is_compared_with_the_raw_client() {
    let Some(endpoint) = std::env::var("KVS_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .and_then(|list| list.split(',').next().map(str::to_owned))
        .filter(|e| !e.is_empty())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but KVS_TEST_DYNAMODB_ENDPOINT is not set"
        );
        eprintln!(
            "!!!!! SKIPPED the DynamoDB benchmark test: KVS_TEST_DYNAMODB_ENDPOINT is not set !!!!!"
        );
        return;
    };
    let mut options = tiny();
    options.keys = 200;
    options.stores = vec![format!(
        "dynamodb://kvs-bench-test?endpoint={endpoint}&create_table=true"
    )];
    let report = kvs_bench::run(&options).await.expect("bench");
    for workload in Workload::ALL {
        for tasks in [1, 4] {
            let comparison = report
                .comparisons
                .iter()
                .find(|c| {
                    c.backend == "dynamodb"
                        && c.peer == "aws-sdk-dynamodb"
                        && c.workload == workload.name()
                        && c.tasks == tasks
                })
                .unwrap_or_else(|| panic!("no comparison for {workload} × {tasks}"));
            assert!(comparison.ratio.is_some_and(|r| r > 0.0), "{comparison:?}");
        }
    }
}
