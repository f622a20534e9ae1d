//! With every backend compiled in (`full`), neither entry point answers
//! `Unsupported` to any operation of the trait, on any `BackendKind`:
//! `kvs::open` and `kvs::open_documents`, from the configuration a user
//! would write (YAML for the embedded backends, the store URL of the test
//! servers for the others). The conformance suite checks what each answer
//! means; this test checks that every answer is a real one.

use futures_util::StreamExt;
use kvs::testkit::env;
use kvs::{BackendKind, DocumentStore, Error, Result, Store};
use std::sync::Arc;
use std::time::Duration;

/// Panics if `result` is `Unsupported`; any other answer is one.
#[track_caller]
fn supported<T: std::fmt::Debug>(kind: BackendKind, entry: &str, op: &str, result: Result<T>) {
    if let Err(e @ Error::Unsupported { .. }) = &result {
        panic!("{kind} through {entry}: {op} answered Unsupported: {e}");
    }
}

/// Calls every method of `Store` once.
async fn every_operation(store: &dyn Store, kind: BackendKind, entry: &str) {
    let ttl = Some(Duration::from_secs(3600));
    let s = |op: &str, r: Result<()>| supported(kind, entry, op, r);
    s("set", store.set("a", b"1", ttl).await);
    s("get", store.get("a").await.map(drop));
    s("exists", store.exists("a").await.map(drop));
    s("list", store.list("").await.map(drop));
    s("count", store.count("").await.map(drop));
    s("ttl", store.ttl("a").await.map(drop));
    s("get_many", store.get_many(&["a", "b"]).await.map(drop));
    s(
        "set_many",
        store.set_many(&[("b", b"2"), ("c", b"3")], None).await,
    );
    s("delete_many", store.delete_many(&["c"]).await.map(drop));
    s(
        "set_if_absent",
        store.set_if_absent("d", b"4", None).await.map(drop),
    );
    s(
        "compare_and_swap",
        store
            .compare_and_swap("d", Some(b"4"), b"5", None)
            .await
            .map(drop),
    );
    s("increment", store.increment("n", 2).await.map(drop));
    s("expire", store.expire("a", Duration::from_secs(60)).await);
    s("persist", store.persist("a").await);
    s("list_page", store.list_page("", None, 2).await.map(drop));
    let scanned: Vec<Result<String>> = store.scan("").collect().await;
    for key in scanned {
        s("scan", key.map(drop));
    }
    s("delete", store.delete("b").await);
    s("delete_prefix", store.delete_prefix("d").await.map(drop));
    s("clear", store.clear().await.map(drop));
    s("close", store.close().await);
}

async fn every_document_operation(store: &dyn DocumentStore, kind: BackendKind) {
    let entry = "open_documents";
    let s = |op: &str, r: Result<()>| supported(kind, entry, op, r);
    let data = serde_json::json!({"name": "ada"});
    let doc = kvs::Document::new("u1", data.as_object().cloned().unwrap_or_default());
    s("restore", store.restore("users", doc.clone()).await);
    s("collections", store.collections().await.map(drop));
    s("put", store.put("users", doc).await);
    s("get_doc", store.get_doc("users", "u1").await.map(drop));
    s(
        "query",
        store
            .query("users", &serde_json::Map::new())
            .await
            .map(drop),
    );
    s("delete_doc", store.delete_doc("users", "u1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_answers_unsupported_through_either_entry_point() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut tried = Vec::new();
    for kind in BackendKind::ALL {
        let Some(config) = env::user_config(kind, dir.path(), "front") else {
            continue;
        };
        let store = match kvs::open(&config).await {
            Ok(store) => store,
            Err(e) => panic!("kvs::open of {kind}: {e}"),
        };
        every_operation(&*store, kind, "open").await;

        let docs = match kvs::open_documents(&config).await {
            Ok(store) => store,
            Err(e) => panic!("kvs::open_documents of {kind}: {e}"),
        };
        every_document_operation(&*docs, kind).await;
        // The same store as a plain `Store`, as an application holds it.
        let plain: Arc<dyn Store> = docs;
        every_operation(&*plain, kind, "open_documents").await;
        tried.push(kind.name());
    }
    eprintln!("front door: every operation answered on {tried:?}");
    if env::require_all() {
        assert_eq!(tried.len(), BackendKind::ALL.len(), "{tried:?}");
    }
}
