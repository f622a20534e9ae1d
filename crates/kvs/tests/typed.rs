//! Typed values on stores opened as users open them (YAML through
//! `kvs::open`): memory and SQLite, bare and layered.

use kvs::typed::{Json, MessagePack};
use kvs::{Config, Error, Store, TypedExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Turn {
    role: String,
    text: String,
}

fn turn(role: &str, text: &str) -> Turn {
    Turn {
        role: role.into(),
        text: text.into(),
    }
}

async fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn Store>)> {
    let sqlite = format!(
        "type: sqlite\nsqlite: {{ path: \"{}/kvs.db\" }}",
        dir.display()
    );
    let mut stores = Vec::new();
    for (name, yaml) in [("memory", "type: memory".to_owned()), ("sqlite", sqlite)] {
        let config = Config::from_yaml(&yaml).unwrap();
        stores.push((name, kvs::open(&config).await.unwrap()));
    }
    stores
}

#[tokio::test]
async fn every_typed_operation_round_trips_on_every_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()).await {
        let turns = store.typed::<Turn>();
        let hello = turn("user", "hello");
        turns.set("t:1", &hello, None).await.unwrap();
        assert_eq!(turns.get("t:1").await.unwrap(), hello, "{name}");
        assert!(
            matches!(turns.get("t:9").await, Err(Error::NotFound)),
            "{name}"
        );

        turns
            .set_many(
                &[("t:2", turn("bot", "hi")), ("t:3", turn("user", "bye"))],
                None,
            )
            .await
            .unwrap();
        let got = turns.get_many(&["t:3", "t:9", "t:2"]).await.unwrap();
        assert_eq!(
            got,
            [Some(turn("user", "bye")), None, Some(turn("bot", "hi"))],
            "{name}"
        );

        assert!(!turns
            .set_if_absent("t:1", &turn("x", "y"), None)
            .await
            .unwrap());
        assert!(turns
            .set_if_absent("t:4", &turn("x", "y"), None)
            .await
            .unwrap());

        // compare_and_swap compares by encoding: the value as written matches.
        assert!(!turns
            .compare_and_swap("t:1", Some(&turn("user", "other")), &turn("a", "b"), None)
            .await
            .unwrap());
        assert!(turns
            .compare_and_swap("t:1", Some(&hello), &turn("user", "edited"), None)
            .await
            .unwrap());
        assert!(turns
            .compare_and_swap("t:5", None, &turn("new", "one"), None)
            .await
            .unwrap());
        assert_eq!(turns.get("t:1").await.unwrap().text, "edited", "{name}");

        // Keys and TTLs are the store's own.
        turns
            .set("t:ttl", &hello, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        assert!(
            turns.store().ttl("t:ttl").await.unwrap().is_some(),
            "{name}"
        );
        assert_eq!(store.count("t:").await.unwrap(), 6, "{name}");
        store.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_value_that_is_not_the_type_is_an_error_naming_key_type_and_codec() {
    let store = kvs::open(&Config::from_yaml("type: memory").unwrap())
        .await
        .unwrap();
    store.set("raw", b"not json", None).await.unwrap();
    store.set("other", br#"{"role": 7}"#, None).await.unwrap();
    let turns = store.typed::<Turn>();
    for key in ["raw", "other"] {
        let err = turns.get(key).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidValue { .. }), "{text}");
        assert!(text.contains(&format!("{key:?}")), "{text}");
        assert!(text.contains("Turn") && text.contains("JSON"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
    // One bad value fails a batch read; the stored bytes stay as they were.
    assert!(turns.get_many(&["raw"]).await.is_err());
    assert_eq!(store.get("raw").await.unwrap(), &b"not json"[..]);
}

#[tokio::test]
async fn messagepack_values_are_smaller_and_read_back() {
    let store = kvs::open(&Config::from_yaml("type: memory").unwrap())
        .await
        .unwrap();
    let packed = store.typed_with::<Turn, MessagePack>();
    let json = store.typed_with::<Turn, Json>();
    let value = turn("assistant", "a longer answer, of some words");
    packed.set("packed", &value, None).await.unwrap();
    json.set("json", &value, None).await.unwrap();
    assert_eq!(packed.get("packed").await.unwrap(), value);
    let (p, j) = (
        store.get("packed").await.unwrap(),
        store.get("json").await.unwrap(),
    );
    assert!(
        p.len() < j.len(),
        "MessagePack {} bytes, JSON {}",
        p.len(),
        j.len()
    );
    // Each codec refuses the other's bytes with a clear error.
    let err = packed.get("json").await.unwrap_err().to_string();
    assert!(err.contains("MessagePack"), "{err}");
}

#[tokio::test]
async fn typed_values_go_through_the_configured_layers() {
    let config =
        Config::from_yaml("type: memory\nlayers: [{ limit_size: { max_value_bytes: 40 } }]")
            .unwrap();
    let store = kvs::open(&config).await.unwrap();
    let turns = store.typed::<Turn>();
    turns.set("short", &turn("u", "ok"), None).await.unwrap();
    let long = turn("user", &"x".repeat(100));
    assert!(matches!(
        turns.set("long", &long, None).await,
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(!store.exists("long").await.unwrap());
}
