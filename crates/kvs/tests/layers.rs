//! Layers, as users declare them: `layers:` in YAML, through `kvs::open`
//! and `kvs::open_documents`.
//!
//! The conformance suite runs on every layer that keeps the contract (in
//! its pass-through settings, alone and stacked) around memory, SQLite and
//! Redis; what each layer changes on purpose is specified below it.

use kvs::expiry::ManualClock;
use kvs::layer::LayerConfig;
use kvs::{Config, Document, DocumentStore, Error, Store};
use std::sync::Arc;
use std::time::Duration;

/// Every layer that keeps the contract, in settings that change nothing
/// the suite can see. Encryption inside compression (compress, then
/// encrypt), and compression from 0 bytes up, so that every value the
/// suite writes is compressed wherever that makes it smaller.
const PASS_THROUGH: &str = "layers:
  - observability: { keys: true }
  - timeout: 60s
  - retry: { attempts: 3, initial: 10ms, max: 100ms }
  - ttl_clamp: {}
  - encryption: { keys: [{ id: k1, key: 6l0IXUYnwCkLn8I+TQHLh93Kmnqmy5lmYL0bkrTSjPo= }] }
  - compression: { threshold: 0 }
  - limit_size: { max_value_bytes: 1073741824 }
";

/// Two keys for the encryption tests: `OLD`, then `NEW`.
const OLD: &str = "6l0IXUYnwCkLn8I+TQHLh93Kmnqmy5lmYL0bkrTSjPo=";
const NEW: &str = "q4v2vH9WfHh0bC1mZ0bgB2cZ4sY1k8Jq3n1dQp7Xc1E=";

fn pass_through() -> Vec<LayerConfig> {
    match Config::from_yaml(&format!("type: memory\n{PASS_THROUGH}")) {
        Ok(config) => config.layers,
        Err(e) => panic!("{e}"),
    }
}

mod memory_ttl_clamp {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::from_yaml(
            "type: memory\nlayers: [{ ttl_clamp: {} }]\n",
            kvs::testkit::Capabilities::new(),
        ))
    }
    kvs::conformance_tests!(harness);
}

mod memory_limit_size {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::from_yaml(
            "type: memory\nlayers: [{ limit_size: { max_value_bytes: 1073741824 } }]\n",
            kvs::testkit::Capabilities::new(),
        ))
    }
    kvs::conformance_tests!(harness);
}

mod memory_compression_lz4 {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::from_yaml(
            "type: memory\nlayers: [{ compression: { algorithm: lz4, threshold: 0 } }]\n",
            kvs::testkit::Capabilities::new(),
        ))
    }
    kvs::conformance_tests!(harness);
}

mod memory_encryption {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::from_yaml(
            &format!(
                "type: memory\nlayers: [{{ encryption: {{ keys: [{{ id: k1, key: {} }}] }} }}]\n",
                super::OLD
            ),
            kvs::testkit::Capabilities::new(),
        ))
    }
    kvs::conformance_tests!(harness);
}

mod memory_observability_timeout_retry {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::from_yaml(
            "type: memory\nlayers: [{ observability: { keys: true } }, { timeout: 60s }, retry]\n",
            kvs::testkit::Capabilities::new(),
        ))
    }
    kvs::conformance_tests!(harness);
}

mod memory_stacked {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::from_yaml(
            &format!("type: memory\n{}", super::PASS_THROUGH),
            kvs::testkit::Capabilities::new(),
        ))
    }
    kvs::conformance_tests!(harness);
}

mod sqlite_stacked {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        Some(kvs::testkit::ConfigHarness::in_temp_dir(&format!(
            "type: sqlite\nsqlite: {{ path: \"{{dir}}/kvs.db\" }}\n{}",
            super::PASS_THROUGH
        )))
    }
    kvs::conformance_tests!(harness);
}

mod redis_stacked {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        let mut caps = kvs::testkit::Capabilities::new();
        caps.shared_namespaces = true;
        caps.persistent = true;
        caps.manual_clock = false;
        Some(
            kvs::testkit::ConfigHarness::from_env("KVS_TEST_REDIS_URL", "redis", caps)?
                .with_layers(&super::pass_through()),
        )
    }
    kvs::conformance_tests!(harness);
}

/// The suite through a tiered store (a bounded local tier over Redis, kept
/// coherent by the bus on the same server): the local tier changes no
/// answer of the contract.
mod redis_tiered {
    async fn harness() -> Option<kvs::testkit::ConfigHarness> {
        let mut caps = kvs::testkit::Capabilities::new();
        caps.shared_namespaces = true;
        caps.persistent = true;
        caps.manual_clock = false;
        let url = kvs::testkit::env::server("KVS_TEST_REDIS_URL", "redis")?;
        let tiered = kvs::layer::LayerConfig::Tiered {
            max_entries: Some(1_000),
            max_bytes: None,
            ttl: None,
            bus: Some(kvs::cache::BusUrl(url.clone())),
        };
        Some(kvs::testkit::ConfigHarness::from_urls(&[&url], caps).with_layers(&[tiered]))
    }
    kvs::conformance_tests!(harness);
}

async fn open(yaml: &str) -> Arc<dyn kvs::DocumentStore> {
    let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    kvs::open_documents(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The store underneath and the same store through `layers`: memory
/// stores are private to their `open`, so both views share one SQLite file.
async fn bare_and_layered(
    dir: &std::path::Path,
    layers: &str,
) -> (Arc<dyn kvs::DocumentStore>, Arc<dyn kvs::DocumentStore>) {
    let base = format!(
        "type: sqlite\nsqlite: {{ path: \"{}/kvs.db\" }}\n",
        dir.display()
    );
    (
        open(&base).await,
        open(&format!("{base}layers: {layers}\n")).await,
    )
}

#[track_caller]
fn read_only<T: std::fmt::Debug>(result: kvs::Result<T>, operation: &str) {
    match result {
        Err(Error::ReadOnly { operation: op }) => assert_eq!(op, operation),
        other => panic!("{operation}: expected Error::ReadOnly, got {other:?}"),
    }
}

#[tokio::test]
async fn read_only_refuses_every_write_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, store) = bare_and_layered(dir.path(), "[read_only]").await;
    bare.set("k", b"v", None).await.unwrap();
    bare.set("n", b"1", None).await.unwrap();
    let mut data = serde_json::Map::new();
    data.insert("name".into(), "ada".into());
    bare.put("users", Document::new("u1", data.clone()))
        .await
        .unwrap();

    read_only(store.set("k", b"x", None).await, "set");
    read_only(store.delete("k").await, "delete");
    read_only(store.set_many(&[("k", b"x")], None).await, "set_many");
    read_only(store.delete_many(&["k"]).await, "delete_many");
    read_only(
        store.set_if_absent("new", b"x", None).await,
        "set_if_absent",
    );
    read_only(
        store.compare_and_swap("k", Some(b"v"), b"x", None).await,
        "compare_and_swap",
    );
    read_only(store.increment("n", 1).await, "increment");
    read_only(store.expire("k", Duration::from_secs(60)).await, "expire");
    read_only(store.persist("k").await, "persist");
    read_only(store.delete_prefix("").await, "delete_prefix");
    read_only(store.clear().await, "clear");
    read_only(store.put("users", Document::new("u2", data)).await, "put");
    read_only(store.delete_doc("users", "u1").await, "delete_doc");
    let doc = bare.get_doc("users", "u1").await.unwrap();
    read_only(store.restore("users", doc).await, "restore");

    // Every read answers, and answers what the bare store holds.
    assert_eq!(store.get("k").await.unwrap(), &b"v"[..]);
    assert_eq!(store.get_many(&["k", "n"]).await.unwrap().len(), 2);
    assert_eq!(store.list("").await.unwrap(), ["k", "n"]);
    assert_eq!(store.count("").await.unwrap(), 2);
    assert_eq!(store.ttl("k").await.unwrap(), None);
    assert_eq!(store.entries_page("", None, 10).await.unwrap().0.len(), 2);
    assert_eq!(store.get_doc("users", "u1").await.unwrap().id, "u1");
    assert_eq!(store.collections().await.unwrap(), ["users"]);
    assert_eq!(
        store
            .query("users", &serde_json::Map::new())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(bare.get("n").await.unwrap(), &b"1"[..]);
    assert!(!bare.exists("new").await.unwrap());
    assert_eq!(
        bare.query("users", &serde_json::Map::new())
            .await
            .unwrap()
            .len(),
        1
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn limit_size_refuses_a_large_value_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, store) =
        bare_and_layered(dir.path(), "[{ limit_size: { max_value_bytes: 4 } }]").await;
    store.set("k", b"1234", None).await.unwrap();
    let too_large = |result: kvs::Result<_>| match result {
        Err(Error::ValueTooLarge {
            size: 5, limit: 4, ..
        }) => {}
        other => panic!("expected ValueTooLarge, got {other:?}"),
    };
    too_large(store.set("k", b"12345", None).await.map(drop));
    too_large(
        store
            .set_many(&[("a", b"1"), ("b", b"12345"), ("c", b"1")], None)
            .await
            .map(drop),
    );
    too_large(store.set_if_absent("new", b"12345", None).await.map(drop));
    too_large(
        store
            .compare_and_swap("k", Some(b"1234"), b"12345", None)
            .await
            .map(drop),
    );
    let err = store
        .set("k", b"12345", None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "kvs: value of 5 bytes for key \"k\" is too large for the limit_size layer (limit 4 bytes)"
    );
    // Nothing of a refused batch was written; the old value stays.
    assert_eq!(bare.list("").await.unwrap(), ["k"]);
    assert_eq!(bare.get("k").await.unwrap(), &b"1234"[..]);
    // A compare-and-swap's expected value is not a write.
    assert!(store
        .compare_and_swap("k", Some(b"1234"), b"ok", None)
        .await
        .unwrap());
}

#[tokio::test]
async fn ttl_clamp_keeps_ttls_within_bounds_and_gives_the_default() {
    const MIN: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(3600);
    const DEFAULT: Duration = Duration::from_secs(60);
    let config = Config::from_yaml(
        "type: memory\nlayers: [{ ttl_clamp: { min: 10s, max: 1h, default: 1m } }]",
    )
    .unwrap();
    // A still clock: a TTL read back is exactly the one that was set.
    let clock = ManualClock::new(1_700_000_000_000);
    let store = kvs::open_with_clock(&config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let ttl = |key: &'static str| {
        let store = store.clone();
        async move { store.ttl(key).await.unwrap() }
    };

    store
        .set("short", b"v", Some(Duration::from_millis(5)))
        .await
        .unwrap();
    store.set("long", b"v", Some(MAX * 24)).await.unwrap();
    store.set("within", b"v", Some(MIN * 3)).await.unwrap();
    store.set("none", b"v", None).await.unwrap();
    store.set("zero", b"v", Some(Duration::ZERO)).await.unwrap();
    assert_eq!(ttl("short").await, Some(MIN));
    assert_eq!(ttl("long").await, Some(MAX));
    assert_eq!(ttl("within").await, Some(MIN * 3));
    assert_eq!(ttl("none").await, Some(DEFAULT));
    assert_eq!(ttl("zero").await, Some(DEFAULT));

    store
        .set_many(&[("a", b"1"), ("b", b"2")], None)
        .await
        .unwrap();
    assert_eq!(ttl("a").await, Some(DEFAULT));
    assert!(store.set_if_absent("c", b"3", Some(MAX * 2)).await.unwrap());
    assert_eq!(ttl("c").await, Some(MAX));
    assert!(store
        .compare_and_swap("c", Some(b"3"), b"4", Some(Duration::from_secs(1)))
        .await
        .unwrap());
    assert_eq!(ttl("c").await, Some(MIN));

    store.expire("within", MAX * 2).await.unwrap();
    assert_eq!(ttl("within").await, Some(MAX));
    // With a default, no key lives forever.
    store.expire("within", Duration::ZERO).await.unwrap();
    assert_eq!(ttl("within").await, Some(DEFAULT));
    store.persist("long").await.unwrap();
    assert_eq!(ttl("long").await, Some(DEFAULT));
    // increment passes through: a counter it creates has no TTL.
    store.increment("counter", 1).await.unwrap();
    assert_eq!(ttl("counter").await, None);

    // The clamped TTLs are real ones.
    clock.advance(DEFAULT + Duration::from_millis(1));
    assert!(!store.exists("none").await.unwrap());
    assert!(!store.exists("c").await.unwrap(), "c had the minimum, 10 s");
}

#[tokio::test]
async fn the_first_layer_listed_is_the_innermost() {
    // limit_size outside read_only: a large value meets the size check
    // first, a small one reaches read_only.
    let outer_limit =
        open("type: memory\nlayers: [read_only, { limit_size: { max_value_bytes: 1 } }]").await;
    assert!(matches!(
        outer_limit.set("k", b"large", None).await,
        Err(Error::ValueTooLarge { .. })
    ));
    read_only(outer_limit.set("k", b"s", None).await, "set");
    let outer_read_only =
        open("type: memory\nlayers: [{ limit_size: { max_value_bytes: 1 } }, read_only]").await;
    read_only(outer_read_only.set("k", b"large", None).await, "set");
}

#[test]
fn bad_layer_settings_are_one_line_errors_naming_the_mistake() {
    let cases = [
        ("layers: [compresion]", "compresion"),
        ("layers: [{ limit_size: {} }]", "max_value_bytes"),
        // A bare name is the layer with its defaults; limit_size has none.
        ("layers: [limit_size]", "max_value_bytes"),
        ("layers: [{ timeout: 0 }]", "the limit is 0"),
        ("layers: [{ timeout: 2 }]", "has no unit"),
        ("layers: [{ retry: { attempts: 0 } }]", "`attempts` is 0"),
        (
            "layers: [{ retry: { initial: 5s, max: 1s } }]",
            "`initial` of 5s is above `max` of 1s",
        ),
        (
            "layers: [{ limit_size: { max_value_bytes: 8, max: 9 } }]",
            "max",
        ),
        (
            "layers: [{ ttl_clamp: { min: 10s, max: 5s } }]",
            "`min` of 10s is above `max` of 5s",
        ),
        ("layers: [{ ttl_clamp: { max: soon } }]", "soon"),
        ("layers: [{ ttl_clamp: { min: 0 } }]", "`min` is 0"),
        // A single layer is still a list.
        ("layers: read_only", "expected sequence start at line 2"),
    ];
    for (layers, want) in cases {
        let yaml = format!("type: memory\n{layers}\n");
        match Config::from_yaml(&yaml) {
            Err(e @ Error::InvalidConfig { .. }) => {
                let message = e.to_string();
                assert!(message.contains(want), "{layers}: {message}");
                assert!(
                    !message.contains('\n'),
                    "{layers}: more than one line: {message}"
                );
            }
            other => panic!("{layers}: expected InvalidConfig, got {other:?}"),
        }
    }
    // JSON takes the same shape.
    let config = Config::from_json(
        r#"{"type": "memory", "layers": ["read_only", {"limit_size": {"max_value_bytes": 8}}]}"#,
    )
    .unwrap();
    assert_eq!(config.layers.len(), 2);
}

#[tokio::test]
async fn compression_keeps_plain_and_compressed_values_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, store) =
        bare_and_layered(dir.path(), "[{ compression: { threshold: 1024 } }]").await;
    let conversation = r#"{"role":"user","text":"tell me about the weather"},"#.repeat(80);
    // Written before the layer existed: read through it unchanged.
    bare.set("old", conversation.as_bytes(), None)
        .await
        .unwrap();
    store
        .set("new", conversation.as_bytes(), None)
        .await
        .unwrap();
    store.set("small", b"short", None).await.unwrap();
    for key in ["old", "new"] {
        assert_eq!(store.get(key).await.unwrap(), conversation.as_bytes());
    }
    let stored = bare.get("new").await.unwrap();
    assert!(
        stored.len() * 3 < conversation.len(),
        "{} bytes stored for {}",
        stored.len(),
        conversation.len()
    );
    assert_eq!(bare.get("small").await.unwrap(), &b"short"[..]);
    let entries = store.entries_page("", None, 10).await.unwrap().0;
    assert!(entries
        .iter()
        .all(|e| e.key == "small" || e.value == conversation.as_bytes()));
    // compare_and_swap compares what the value holds, whatever its form.
    assert!(store
        .compare_and_swap("old", Some(conversation.as_bytes()), b"swapped", None)
        .await
        .unwrap());
    assert!(store
        .compare_and_swap("new", Some(conversation.as_bytes()), b"swapped", None)
        .await
        .unwrap());
    assert!(!store
        .compare_and_swap("new", Some(conversation.as_bytes()), b"again", None)
        .await
        .unwrap());

    // Documents are not compressed.
    let mut data = serde_json::Map::new();
    data.insert("text".into(), conversation.clone().into());
    store
        .put("chats", Document::new("c1", data.clone()))
        .await
        .unwrap();
    assert_eq!(bare.get_doc("chats", "c1").await.unwrap().data, data);

    // A damaged frame is an error naming the key, not garbage.
    store
        .set("damaged", conversation.as_bytes(), None)
        .await
        .unwrap();
    let mut raw = bare.get("damaged").await.unwrap().to_vec();
    let middle = raw.len() / 2;
    raw[middle] ^= 0xFF;
    bare.set("damaged", &raw, None).await.unwrap();
    let err = store.get("damaged").await.unwrap_err().to_string();
    assert!(err.contains("\"damaged\""), "{err}");
}

/// An `encryption:` entry with the keys `(id, base64)`, newest first.
fn encryption(keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(id, key)| format!("{{ id: {id}, key: {key} }}"))
        .collect();
    format!("[{{ encryption: {{ keys: [{}] }} }}]", keys.join(", "))
}

#[tokio::test]
async fn encryption_binds_each_value_to_its_key_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, store) = bare_and_layered(dir.path(), &encryption(&[("k1", OLD)])).await;
    store
        .set("card", b"4111 1111 1111 1111", None)
        .await
        .unwrap();
    assert_eq!(
        store.get("card").await.unwrap(),
        &b"4111 1111 1111 1111"[..]
    );
    let stored = bare.get("card").await.unwrap();
    assert!(!stored.windows(4).any(|w| w == b"4111"), "{stored:?}");

    // Copied to another key, the value fails to decrypt.
    bare.set("other", &stored, None).await.unwrap();
    let err = store.get("other").await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, .. } if key == "other")
            && err.to_string().contains("fails authentication"),
        "{err}"
    );
    // Any changed byte is an error, never another value.
    for i in [0, 3, stored.len() / 2, stored.len() - 1] {
        let mut damaged = stored.to_vec();
        damaged[i] ^= 0x01;
        bare.set("damaged", &damaged, None).await.unwrap();
        assert!(store.get("damaged").await.is_err(), "byte {i} changed");
    }
    // So does a plain value planted underneath.
    bare.set("planted", b"{\"admin\":true}", None)
        .await
        .unwrap();
    let err = store.get("planted").await.unwrap_err().to_string();
    assert!(err.contains("is not encrypted"), "{err}");

    // Copied to another namespace of the same file, with the same key.
    let base = format!(
        "type: sqlite\nsqlite: {{ path: \"{}/kvs.db\" }}\n",
        dir.path().display()
    );
    let tenant_b = open(&format!(
        "{base}namespace: tenant-b\nlayers: {}\n",
        encryption(&[("k1", OLD)])
    ))
    .await;
    let bare_b = open(&format!("{base}namespace: tenant-b\n")).await;
    bare_b.set("card", &stored, None).await.unwrap();
    assert!(tenant_b.get("card").await.is_err());
    tenant_b.set("card", b"b's card", None).await.unwrap();
    assert_eq!(tenant_b.get("card").await.unwrap(), &b"b's card"[..]);

    // Counters, batches, CAS and listing all see plain values.
    assert_eq!(store.increment("visits", 2).await.unwrap(), 2);
    assert_eq!(store.increment("visits", 3).await.unwrap(), 5);
    assert_ne!(bare.get("visits").await.unwrap(), &b"5"[..]);
    store
        .set_many(&[("a", b"1"), ("b", b"2")], None)
        .await
        .unwrap();
    assert_eq!(
        store.get_many(&["a", "b"]).await.unwrap(),
        [
            Some(kvs::Bytes::from_static(b"1")),
            Some(kvs::Bytes::from_static(b"2"))
        ]
    );
    assert!(store
        .compare_and_swap("a", Some(b"1"), b"3", None)
        .await
        .unwrap());
    assert!(!store
        .compare_and_swap("a", Some(b"1"), b"4", None)
        .await
        .unwrap());
    let page = store.entries_page("a", None, 10).await.unwrap().0;
    assert_eq!(page[0].value, &b"3"[..]);

    // Documents are not encrypted.
    let mut data = serde_json::Map::new();
    data.insert("name".into(), "ada".into());
    store
        .put("users", Document::new("u1", data.clone()))
        .await
        .unwrap();
    assert_eq!(bare.get_doc("users", "u1").await.unwrap().data, data);
}

#[tokio::test]
async fn encryption_keys_rotate_reading_any_and_writing_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_, before) = bare_and_layered(dir.path(), &encryption(&[("2026-06", OLD)])).await;
    before
        .set("old", b"written under 2026-06", None)
        .await
        .unwrap();
    before.close().await.unwrap();

    let (bare, rotated) = bare_and_layered(
        dir.path(),
        &encryption(&[("2026-12", NEW), ("2026-06", OLD)]),
    )
    .await;
    assert_eq!(
        rotated.get("old").await.unwrap(),
        &b"written under 2026-06"[..]
    );
    rotated
        .set("new", b"written under 2026-12", None)
        .await
        .unwrap();
    assert_eq!(&bare.get("new").await.unwrap()[3..10], b"2026-12");
    // Rewriting a value moves it to the newest key.
    let value = rotated.get("old").await.unwrap();
    rotated.set("old", &value, None).await.unwrap();
    rotated.close().await.unwrap();

    let (_, only_new) = bare_and_layered(dir.path(), &encryption(&[("2026-12", NEW)])).await;
    assert_eq!(
        only_new.get("old").await.unwrap(),
        &b"written under 2026-06"[..]
    );
    let (_, only_old) = bare_and_layered(dir.path(), &encryption(&[("2026-06", OLD)])).await;
    let err = only_old.get("new").await.unwrap_err().to_string();
    assert!(
        err.contains("\"2026-12\", which is not configured"),
        "{err}"
    );
    // The same id with other key bytes is a wrong key, caught.
    let (_, wrong) = bare_and_layered(dir.path(), &encryption(&[("2026-12", OLD)])).await;
    assert!(wrong.get("new").await.is_err());
}

#[test]
fn encryption_keys_come_from_the_environment_and_never_show() {
    // A variable no other test reads: the tests of this binary share the
    // process environment.
    std::env::set_var("KVS_TEST_LAYERS_ENCRYPTION_KEY", NEW);
    let yaml = "type: memory\nlayers: [{ encryption: { keys: [{ id: k1, env: KVS_TEST_LAYERS_ENCRYPTION_KEY }, { id: k0, key: OLDKEY }] } }]\n"
        .replace("OLDKEY", OLD);
    let config = Config::from_yaml(&yaml).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains(OLD) && !shown.contains(NEW), "{shown}");
    assert!(shown.contains("KVS_TEST_LAYERS_ENCRYPTION_KEY"), "{shown}");

    let cases = [
        (
            "env: KVS_TEST_NOT_SET_ANYWHERE",
            "the environment variable KVS_TEST_NOT_SET_ANYWHERE is not set",
        ),
        ("key: c2hvcnQ=", "key \"k1\" is not 32 bytes of base64"),
        ("key: x, env: Y", "exactly one of `key` and `env`"),
        ("key: x, secret: y", "secret"),
    ];
    for (entry, want) in cases {
        let yaml = format!(
            "type: memory\nlayers: [{{ encryption: {{ keys: [{{ id: k1, {entry} }}] }} }}]\n"
        );
        let err = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert!(err.contains(want), "{entry}: {err}");
        assert!(
            !err.contains("c2hvcnQ") && !err.contains('\n'),
            "{entry}: {err}"
        );
    }
    let err = Config::from_yaml("type: memory\nlayers: [{ encryption: { keys: [] } }]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lists no key"), "{err}");
}

/// A metrics recorder that keeps every counter and histogram in a map,
/// by name and labels (`name{label=value,...}`, labels in call order).
#[derive(Default)]
struct Recorded(std::sync::Mutex<std::collections::BTreeMap<String, f64>>);

struct Slot(Arc<Recorded>, String);

impl metrics::CounterFn for Slot {
    fn increment(&self, value: u64) {
        *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.0
             .0
            .lock()
            .unwrap()
            .insert(self.1.clone(), value as f64);
    }
}

impl metrics::HistogramFn for Slot {
    fn record(&self, _value: f64) {
        // Histograms count their samples here.
        *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += 1.0;
    }
}

struct Recorder(Arc<Recorded>);

impl Recorder {
    fn slot(&self, key: &metrics::Key) -> Arc<Slot> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Slot(
            self.0.clone(),
            format!("{}{{{}}}", key.name(), labels.join(",")),
        ))
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.slot(key))
    }
}

#[test]
fn observability_counts_calls_errors_bytes_and_time_by_operation() {
    let recorded = Arc::new(Recorded::default());
    let recorder = Recorder(recorded.clone());
    // A layer's name alone is the layer with its default settings.
    let config =
        Config::from_yaml("type: memory\nnamespace: carts\nlayers: [observability]\n").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The memory store answers at once, so every call records on this
    // thread, inside the local recorder's scope.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let store = kvs::open(&config).await.unwrap();
            store.set("a", b"12345", None).await.unwrap();
            assert_eq!(store.get("a").await.unwrap(), &b"12345"[..]);
            assert!(matches!(store.get("missing").await, Err(Error::NotFound)));
            assert!(matches!(store.get("").await, Err(Error::InvalidKey { .. })));
            store
                .set_many(&[("b", b"xy"), ("c", b"z")], None)
                .await
                .unwrap();
        })
    });
    let recorded = recorded.0.lock().unwrap();
    let labels = |op: &str| format!("backend=memory,namespace=carts,operation={op}");
    let value = |name: &str| {
        recorded
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} in {recorded:#?}"))
    };
    assert_eq!(
        value(&format!("kvs_calls_total{{{},outcome=ok}}", labels("get"))),
        1.0
    );
    assert_eq!(
        value(&format!(
            "kvs_calls_total{{{},outcome=not_found}}",
            labels("get")
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "kvs_calls_total{{{},outcome=invalid_key}}",
            labels("get")
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "kvs_errors_total{{{},kind=invalid_key}}",
            labels("get")
        )),
        1.0
    );
    assert!(
        !recorded.keys().any(|k| k.contains("kind=not_found")),
        "a miss is not an error"
    );
    assert_eq!(
        value(&format!("kvs_call_seconds{{{}}}", labels("get"))),
        3.0
    );
    assert_eq!(
        value(&format!("kvs_read_bytes_total{{{}}}", labels("get"))),
        5.0
    );
    assert_eq!(
        value(&format!("kvs_written_bytes_total{{{}}}", labels("set"))),
        5.0
    );
    assert_eq!(
        value(&format!(
            "kvs_written_bytes_total{{{}}}",
            labels("set_many")
        )),
        3.0
    );
    // Nothing names a key or a value.
    let all = format!("{recorded:?}");
    assert!(!all.contains("12345") && !all.contains("missing"), "{all}");
}
