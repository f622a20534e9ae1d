//! The conformance suite on a real PostgreSQL server: the one
//! `scripts/test` starts on 127.0.0.1:5439 (never the machine's own 5432),
//! named by `KVS_TEST_POSTGRES_URL`, opened through `kvs::open` and
//! `kvs::open_documents`.

use kvs::testkit::{Capabilities, ConfigHarness};
use kvs::Store;

/// Stores opened from the server's URL, in namespaces of this run. The
/// backend reads time from the store's clock, never the server's, so the
/// cases run on a manual clock.
async fn harness() -> Option<ConfigHarness> {
    ConfigHarness::from_env("KVS_TEST_POSTGRES_URL", "postgres", capabilities())
}

fn capabilities() -> Capabilities {
    let mut caps = Capabilities::new();
    caps.shared_namespaces = true;
    caps.persistent = true;
    caps.manual_clock = true;
    caps
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 2,000 mixed operations on the test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_2000_operations() {
    let Some(h) = harness().await else { return };
    kvs::testkit::cases::load(&h, 64, 2_000).await;
}

/// Runs `sql` with `psql` on `url`, failing on an error; its output,
/// unaligned and trimmed.
fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-Atq", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `psql` reads what kvs wrote: one row per key in the documented table,
/// the key and value as bytes, the deadline in milliseconds.
#[tokio::test]
async fn psql_reads_our_table() {
    let Ok(url) = std::env::var("KVS_TEST_POSTGRES_URL") else {
        assert!(
            !kvs::testkit::env::require_all(),
            "KVS_TEST_POSTGRES_URL is not set"
        );
        eprintln!("!!!!! SKIPPED: psql interop — KVS_TEST_POSTGRES_URL is not set !!!!!");
        return;
    };
    let namespace = format!("{}psql", kvs::testkit::unique_namespace());
    let mut config = kvs::Config::from_url(&url).expect("url");
    config.namespace = namespace.clone();
    let store = kvs::open(&config).await.expect("open");
    store.set("user:42", b"ada", None).await.expect("set");
    let query = format!(
        "SELECT convert_from(key, 'UTF8') || '=' || convert_from(value, 'UTF8') \
         FROM kvs WHERE namespace = '{namespace}' ORDER BY key"
    );
    assert_eq!(psql(&url, &query), "user:42=ada");
    store.clear().await.expect("clear");
}

/// Filters pushed down to SQL find exactly what the in-process evaluator
/// finds, on random documents and filters: numbers around 2^53, floats,
/// nulls, strings with U+0000 (kept as text, not `jsonb`), nested
/// objects, array-index-looking keys, and every operator.
mod push_down {
    use super::harness;
    use kvs::raw::Filter;
    use kvs::testkit::Harness;
    use kvs::{Document, DocumentStore};
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..40).prop_map(|n| json!(n)),
            prop_oneof![
                Just(9_007_199_254_740_992u64),
                Just(9_007_199_254_740_993u64),
                Just(u64::MAX)
            ]
            .prop_map(|n| json!(n)),
            prop_oneof![
                Just(1.0f64),
                Just(2.5),
                Just(-0.5),
                Just(9_007_199_254_740_992.0)
            ]
            .prop_map(|f| json!(f)),
            "[ab\u{0}é\"']{0,3}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[ab0]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn data() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map("[abn0]", value(), 0..4).prop_map(|m| m.into_iter().collect())
    }

    fn condition() -> impl Strategy<Value = (String, Value)> {
        let path = prop_oneof![
            Just("a"),
            Just("b"),
            Just("n"),
            Just("0"),
            Just("a.b"),
            Just("a.0"),
            Just("b.a.b")
        ];
        let test = prop_oneof![
            value(),
            scalar().prop_map(|v| json!({"$eq": v})),
            scalar().prop_map(|v| json!({"$ne": v})),
            prop::collection::vec(value(), 0..3).prop_map(|v| json!({"$in": v})),
            any::<bool>().prop_map(|b| json!({"$exists": b})),
            "[ab\u{0}é]{0,2}".prop_map(|s| json!({"$prefix": s})),
            (
                prop_oneof![Just("$gt"), Just("$gte"), Just("$lt"), Just("$lte")],
                prop_oneof![
                    (-3i64..40).prop_map(|n| json!(n)),
                    scalar().prop_filter("a range operand", |v| v.is_number() || v.is_string())
                ]
            )
                .prop_map(|(op, v)| json!({ op: v })),
        ];
        (path, test).prop_map(|(p, t)| (p.to_owned(), t))
    }

    fn filter() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(
            prop_oneof![
                Just("a"),
                Just("b"),
                Just("n"),
                Just("0"),
                Just("a.b"),
                Just("a.0")
            ],
            condition().prop_map(|(_, t)| t),
            0..3,
        )
        .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn push_down_agrees_with_the_evaluator() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let Some(h) = rt.block_on(harness()) else {
            return;
        };
        let namespace = format!("{}pushdown", kvs::testkit::unique_namespace());
        let store = rt
            .block_on(h.open_documents(&namespace))
            .expect("open_documents");
        let config = ProptestConfig {
            cases: 256,
            ..ProptestConfig::default()
        };
        let case = std::sync::atomic::AtomicU32::new(0);
        let (queries, matched) = (AtomicUsize::new(0), AtomicUsize::new(0));
        proptest!(config, |(docs in prop::collection::vec(data(), 1..14),
                            filters in prop::collection::vec(filter(), 1..8),
                            single in prop::collection::vec(condition(), 1..6))| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            let collection = format!("c{n}");
            rt.block_on(async {
                for (i, data) in docs.iter().enumerate() {
                    store
                        .put(&collection, Document::new(format!("d{i:02}"), data.clone()))
                        .await
                        .expect("put");
                }
            });
            let singles = single.into_iter().map(|(p, t)| Map::from_iter([(p, t)]));
            for f in filters.into_iter().chain(singles) {
                let parsed = Filter::parse(&f);
                let found = rt.block_on(store.query(&collection, &f));
                match parsed {
                    Err(_) => prop_assert!(found.is_err(), "{f:?} parsed nowhere but was answered"),
                    Ok(parsed) => {
                        let found: Vec<String> = found
                            .unwrap_or_else(|e| panic!("{}: {e}", Value::Object(f.clone())))
                            .into_iter()
                            .map(|d| d.id)
                            .collect();
                        let expected: Vec<String> = docs
                            .iter()
                            .enumerate()
                            .filter(|(_, data)| parsed.matches(data))
                            .map(|(i, _)| format!("d{i:02}"))
                            .collect();
                        queries.fetch_add(1, Ordering::Relaxed);
                        matched.fetch_add(expected.len(), Ordering::Relaxed);
                        prop_assert_eq!(found, expected, "filter {}", Value::Object(f.clone()));
                    }
                }
            }
        });
        eprintln!(
            "push-down: {} cases, {} queries agreed with the evaluator, {} matches in all",
            case.load(Ordering::Relaxed),
            queries.load(Ordering::Relaxed),
            matched.load(Ordering::Relaxed)
        );
        rt.block_on(async {
            for name in store.collections().await.expect("collections") {
                for doc in store.query(&name, &Map::new()).await.expect("all") {
                    store.delete_doc(&name, &doc.id).await.expect("delete");
                }
            }
        });
    }

    /// `psql` reads a document as `jsonb`.
    #[tokio::test]
    async fn psql_reads_a_document() {
        let Some(h) = harness().await else { return };
        let namespace = format!("{}psqldoc", kvs::testkit::unique_namespace());
        let store = h.open_documents(&namespace).await.expect("open");
        let data = json!({"name": "ada", "age": 36});
        let doc = Document::new("u1", data.as_object().cloned().unwrap_or_default());
        store.put("users", doc).await.expect("put");
        let url = std::env::var("KVS_TEST_POSTGRES_URL").expect("url");
        let query = format!(
            "SELECT body->'data'->>'name' FROM kvs_documents \
             WHERE strpos(namespace, '{namespace}') > 0 AND collection = 'users'::bytea \
             AND id = 'u1'::bytea"
        );
        assert_eq!(super::psql(&url, &query), "ada");
        store.delete_doc("users", "u1").await.expect("delete");
    }
}

/// Eight stores opening a table that does not exist yet, at once, all
/// succeed (they take turns on an advisory lock to create it), and a
/// store told not to create its table fails at open, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_new_table_from_many_stores_at_once() {
    let Ok(url) = std::env::var("KVS_TEST_POSTGRES_URL") else {
        assert!(
            !kvs::testkit::env::require_all(),
            "KVS_TEST_POSTGRES_URL is not set"
        );
        eprintln!(
            "!!!!! SKIPPED: concurrent table creation — KVS_TEST_POSTGRES_URL is not set !!!!!"
        );
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let table = format!("kvs_race_{}_{nanos}", std::process::id());
    let opens = (0..8).map(|i| {
        let url = kvs::testkit::env::with_query(&url, &format!("table={table}&namespace=n{i}"));
        async move {
            let store = kvs::open(&kvs::Config::from_url(&url).expect("url")).await?;
            store.set("k", b"v", None).await?;
            kvs::Result::<std::sync::Arc<dyn Store>>::Ok(store)
        }
    });
    for store in futures_util::future::join_all(opens).await {
        let store = store.expect("every concurrent open succeeds");
        assert_eq!(&store.get("k").await.expect("get")[..], b"v");
        store.close().await.expect("close");
    }
    let missing =
        kvs::testkit::env::with_query(&url, &format!("table={table}_missing&create_table=false"));
    let e = kvs::open(&kvs::Config::from_url(&missing).expect("url"))
        .await
        .err()
        .expect("a missing table fails at open");
    assert!(e.to_string().contains(&format!("{table}_missing")), "{e}");
    let drop = format!("DROP TABLE {table}; DROP TABLE {table}_documents");
    psql(&url, &drop);
}
