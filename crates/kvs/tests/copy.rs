//! `kvs::copy` between every ordered pair of the five backends, each
//! opened as a user opens it (YAML for the embedded ones, the test servers'
//! store URLs for the others), and the copy's options on the pairs where
//! they matter.

use kvs::testkit::env;
use kvs::{BackendKind, Config, CopyOptions, Error, Store};
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// The configuration of `kind` for the store `tag` of one copy.
fn config(kind: BackendKind, dir: &std::path::Path, tag: &str) -> Option<Config> {
    env::user_config(kind, dir, &format!("copy-{tag}"))
}

async fn open(config: &Config) -> Arc<dyn Store> {
    match kvs::open(config).await {
        Ok(store) => store,
        Err(e) => panic!("opening {}: {e}", config.backend),
    }
}

/// What every pair copies: plain keys over several pages, keys with TTLs
/// an hour and more away, binary and empty values, characters that mean
/// something to other engines.
async fn fill(src: &dyn Store) -> Vec<String> {
    let plain: Vec<(String, Vec<u8>)> = (0..70)
        .map(|i| (format!("k:{i:03}"), format!("value {i}").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = plain
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    src.set_many(&refs, None).await.unwrap();
    for i in 0..12u64 {
        let ttl = HOUR + Duration::from_secs(i * 60);
        src.set(&format!("t:{i:02}"), b"expiring", Some(ttl))
            .await
            .unwrap();
    }
    let binary: Vec<u8> = (0..=255).collect();
    src.set("bin", &binary, None).await.unwrap();
    src.set("empty", b"", None).await.unwrap();
    src.set("a*b?[c]%_\\", b"glob", None).await.unwrap();
    src.set("ключ", "значение".as_bytes(), None).await.unwrap();
    src.list("").await.unwrap()
}

async fn copy_pair(from: BackendKind, to: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let (Some(src_config), Some(dst_config)) = (
        config(from, dir.path(), "src"),
        config(to, dir.path(), "dst"),
    ) else {
        return;
    };
    let src = open(&src_config).await;
    let dst = open(&dst_config).await;
    let keys = fill(&*src).await;
    let options = CopyOptions::new().batch_size(16).verify(true);
    let mut pages = 0;
    let report = kvs::copy_with_progress(&*src, &*dst, &options, |_| pages += 1)
        .await
        .unwrap_or_else(|e| panic!("copying {from} to {to}: {e}"));
    assert_eq!(
        report.copied,
        keys.len() as u64,
        "{from} to {to}: keys copied"
    );
    assert_eq!(
        report.verified,
        keys.len() as u64,
        "{from} to {to}: keys verified"
    );
    assert_eq!(
        report.mismatch_count, 0,
        "{from} to {to}: {:?}",
        report.mismatches
    );
    assert!(
        pages >= keys.len() / 16,
        "{from} to {to}: one report a page ({pages})"
    );
    assert_eq!(
        dst.list("").await.unwrap(),
        keys,
        "{from} to {to}: the keys"
    );
    assert_eq!(dst.get("bin").await.unwrap(), src.get("bin").await.unwrap());
    assert_eq!(dst.get("empty").await.unwrap().len(), 0);
    assert_eq!(
        dst.ttl("k:000").await.unwrap(),
        None,
        "{from} to {to}: no TTL stays none"
    );
    let left = dst.ttl("t:11").await.unwrap().expect("a copied TTL");
    let want = HOUR + Duration::from_secs(11 * 60);
    assert!(
        left <= want && left + Duration::from_secs(60) > want,
        "{from} to {to}: t:11 has {left:?} left, the source gave it {want:?}"
    );
    assert_eq!(
        src.count("").await.unwrap(),
        keys.len(),
        "{from} to {to}: the source is unchanged"
    );
    dst.clear().await.unwrap();
    src.clear().await.unwrap();
    src.close().await.unwrap();
    dst.close().await.unwrap();
}

macro_rules! pairs {
    ($($name:ident: $from:ident -> $to:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            copy_pair(BackendKind::$from, BackendKind::$to).await;
        }
    )*};
}

pairs! {
    memory_to_sqlite: Memory -> Sqlite,
    memory_to_leveldb: Memory -> LevelDb,
    memory_to_redis: Memory -> Redis,
    memory_to_dynamodb: Memory -> DynamoDb,
    sqlite_to_memory: Sqlite -> Memory,
    sqlite_to_leveldb: Sqlite -> LevelDb,
    sqlite_to_redis: Sqlite -> Redis,
    sqlite_to_dynamodb: Sqlite -> DynamoDb,
    leveldb_to_memory: LevelDb -> Memory,
    leveldb_to_sqlite: LevelDb -> Sqlite,
    leveldb_to_redis: LevelDb -> Redis,
    leveldb_to_dynamodb: LevelDb -> DynamoDb,
    redis_to_memory: Redis -> Memory,
    redis_to_sqlite: Redis -> Sqlite,
    redis_to_leveldb: Redis -> LevelDb,
    redis_to_dynamodb: Redis -> DynamoDb,
    dynamodb_to_memory: DynamoDb -> Memory,
    dynamodb_to_sqlite: DynamoDb -> Sqlite,
    dynamodb_to_leveldb: DynamoDb -> LevelDb,
    dynamodb_to_redis: DynamoDb -> Redis,
    sqlite_to_sqlite: Sqlite -> Sqlite,
    sqlite_to_postgres: Sqlite -> Postgres,
    redis_to_postgres: Redis -> Postgres,
    dynamodb_to_postgres: DynamoDb -> Postgres,
    postgres_to_sqlite: Postgres -> Sqlite,
    postgres_to_redis: Postgres -> Redis,
    postgres_to_postgres: Postgres -> Postgres,
}

/// Two SQLite stores in one directory, as the options tests use them.
async fn two_sqlite(dir: &std::path::Path) -> (Config, Arc<dyn Store>, Arc<dyn Store>) {
    let src_config = config(BackendKind::Sqlite, dir, "src").unwrap();
    let dst_config = config(BackendKind::Sqlite, dir, "dst").unwrap();
    let (src, dst) = (open(&src_config).await, open(&dst_config).await);
    (src_config, src, dst)
}

#[tokio::test]
async fn a_prefix_copies_only_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (_, src, dst) = two_sqlite(dir.path()).await;
    fill(&*src).await;
    let options = CopyOptions::new().prefix("t:").batch_size(5).verify(true);
    let report = kvs::copy(&*src, &*dst, &options).await.unwrap();
    assert_eq!((report.copied, report.mismatch_count), (12, 0));
    assert_eq!(dst.count("").await.unwrap(), 12);
    assert_eq!(report.last_key.as_deref(), Some("t:11"));
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_counts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (_, src, dst) = two_sqlite(dir.path()).await;
    let keys = fill(&*src).await;
    dst.set("extra", b"x", None).await.unwrap();
    let options = CopyOptions::new().dry_run(true).delete_missing(true);
    let report = kvs::copy(&*src, &*dst, &options).await.unwrap();
    assert_eq!(report.copied, keys.len() as u64);
    // "value 0".."value 69", twelve "expiring", 0..=255, "", "glob", "значение".
    assert_eq!(report.bytes, 10 * 7 + 60 * 8 + 12 * 8 + 256 + 4 + 16);
    assert_eq!(report.deleted, 1, "extra would be deleted");
    assert_eq!(
        dst.list("").await.unwrap(),
        ["extra"],
        "nothing written, nothing deleted"
    );
}

#[tokio::test]
async fn delete_missing_makes_the_destination_equal_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (_, src, dst) = two_sqlite(dir.path()).await;
    fill(&*src).await;
    for key in ["k:0005", "k:999", "k:", "t:99", "zzz"] {
        dst.set(key, b"stale", None).await.unwrap();
    }
    let options = CopyOptions::new()
        .prefix("k:")
        .batch_size(7)
        .delete_missing(true)
        .verify(true);
    let report = kvs::copy(&*src, &*dst, &options).await.unwrap();
    assert_eq!(
        report.deleted, 3,
        "k:0005, k:999 and k: are not in the source"
    );
    assert_eq!(report.mismatch_count, 0, "{:?}", report.mismatches);
    assert_eq!(dst.list("k:").await.unwrap(), src.list("k:").await.unwrap());
    assert!(
        dst.exists("t:99").await.unwrap(),
        "outside the prefix: kept"
    );
    assert!(dst.exists("zzz").await.unwrap(), "outside the prefix: kept");
}

#[tokio::test]
async fn start_after_resumes_where_the_last_page_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (_, src, dst) = two_sqlite(dir.path()).await;
    let keys = fill(&*src).await;
    let options = CopyOptions::new()
        .start_after(Some("k:049".into()))
        .verify(true);
    let report = kvs::copy(&*src, &*dst, &options).await.unwrap();
    let after: Vec<&String> = keys.iter().filter(|k| k.as_str() > "k:049").collect();
    assert_eq!(report.copied, after.len() as u64);
    // Verification covers the whole prefix: the first half is missing.
    assert_eq!(report.mismatch_count, (keys.len() - after.len()) as u64);
    assert_eq!(report.mismatches[0].problem, "missing from the destination");
    let rest = CopyOptions::new().verify(true);
    let report = kvs::copy(&*src, &*dst, &rest).await.unwrap();
    assert_eq!(report.mismatch_count, 0);
}

#[tokio::test]
async fn verification_names_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, src, dst) = two_sqlite(dir.path()).await;
    fill(&*src).await;
    kvs::copy(&*src, &*dst, &CopyOptions::new()).await.unwrap();
    dst.set("k:001", b"changed", None).await.unwrap();
    dst.set("k:002", b"value 2", Some(HOUR)).await.unwrap();
    dst.delete("k:003").await.unwrap();
    let report = kvs::copy(&*src, &*dst, &CopyOptions::new().dry_run(true).verify(true))
        .await
        .unwrap();
    let problems: Vec<String> = report.mismatches.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "\"k:001\": the value differs",
            "\"k:002\": TTL none in the source, 1h0m0s in the destination",
            "\"k:003\": missing from the destination",
        ]
    );
}

#[tokio::test]
async fn a_store_is_never_copied_onto_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (config, src, _) = two_sqlite(dir.path()).await;
    fill(&*src).await;
    let err = kvs::copy(&*src, &*src, &CopyOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("same store"), "{err}");
    let mut again = config.clone();
    assert!(config.same_store(&again));
    again.namespace.push('2');
    assert!(
        !config.same_store(&again),
        "another namespace is another store"
    );
    let memory = Config::new(BackendKind::Memory);
    assert!(!memory.same_store(&memory), "every memory store is private");
}

/// Documents copy with their timestamps, between the native SQLite layer
/// and the generic one of every other backend, both ways.
async fn copy_documents_pair(from: BackendKind, to: BackendKind) {
    use kvs::{Document, DocumentStore};
    let dir = tempfile::tempdir().unwrap();
    let (Some(src_config), Some(dst_config)) = (
        config(from, dir.path(), "src"),
        config(to, dir.path(), "dst"),
    ) else {
        return;
    };
    let src = kvs::open_documents(&src_config).await.unwrap();
    let dst = kvs::open_documents(&dst_config).await.unwrap();
    for (collection, id, age) in [("users", "ada", 36), ("users", "bob", 17), ("a:b", "x", 1)] {
        let data = serde_json::json!({ "age": age, "name": id });
        let data = data.as_object().unwrap().clone();
        src.put(collection, Document::new(id, data)).await.unwrap();
    }
    src.set("plain", b"key", None).await.unwrap();
    let options = CopyOptions::new().verify(true);
    let report = kvs::copy_documents(&*src, &*dst, &options).await.unwrap();
    assert_eq!(
        (report.copied, report.mismatch_count),
        (3, 0),
        "{from} to {to}: {:?}",
        report.mismatches
    );
    assert_eq!(dst.collections().await.unwrap(), ["a:b", "users"]);
    let want = src.get_doc("users", "ada").await.unwrap();
    assert_eq!(
        dst.get_doc("users", "ada").await.unwrap(),
        want,
        "{from} to {to}: timestamps kept"
    );
    assert!(!dst.exists("plain").await.unwrap(), "documents only");
    for (c, id) in [("users", "ada"), ("users", "bob"), ("a:b", "x")] {
        src.delete_doc(c, id).await.unwrap();
        dst.delete_doc(c, id).await.unwrap();
    }
    src.clear().await.unwrap();
    src.close().await.unwrap();
    dst.close().await.unwrap();
}

macro_rules! document_pairs {
    ($($name:ident: $from:ident -> $to:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            copy_documents_pair(BackendKind::$from, BackendKind::$to).await;
        }
    )*};
}

document_pairs! {
    documents_memory_to_sqlite: Memory -> Sqlite,
    documents_sqlite_to_leveldb: Sqlite -> LevelDb,
    documents_leveldb_to_redis: LevelDb -> Redis,
    documents_redis_to_dynamodb: Redis -> DynamoDb,
    documents_dynamodb_to_sqlite: DynamoDb -> Sqlite,
    documents_sqlite_to_postgres: Sqlite -> Postgres,
    documents_postgres_to_dynamodb: Postgres -> DynamoDb,
}
