//! `kvs::blocking`: the store without an async runtime, as a program with
//! none uses it, through a YAML configuration.

use kvs::{Config, Error};
use std::time::Duration;

fn sqlite_config(dir: &std::path::Path) -> Config {
    Config::from_yaml(&format!(
        "type: sqlite\nsqlite: {{ path: \"{}/kvs.db\" }}\nlayers: [{{ ttl_clamp: {{ default: 1h }} }}]\n",
        dir.display()
    ))
    .unwrap()
}

#[test]
fn every_operation_blocks_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = kvs::blocking::open(&sqlite_config(dir.path())).unwrap();
    store.set("a", b"1", None).unwrap();
    assert_eq!(store.get("a").unwrap(), &b"1"[..]);
    // The configured layers are there: the default TTL was given.
    assert!(store.ttl("a").unwrap().is_some());
    assert!(matches!(store.get("missing"), Err(Error::NotFound)));
    store.set_many(&[("b", b"2"), ("c", b"3")], None).unwrap();
    assert_eq!(store.list("").unwrap(), ["a", "b", "c"]);
    assert_eq!(store.count("").unwrap(), 3);
    assert_eq!(store.get_many(&["a", "z"]).unwrap()[1], None);
    assert!(store.set_if_absent("d", b"4", None).unwrap());
    assert!(!store.set_if_absent("d", b"5", None).unwrap());
    assert!(store.compare_and_swap("d", Some(b"4"), b"6", None).unwrap());
    assert_eq!(store.increment("n", 5).unwrap(), 5);
    store.expire("a", Duration::from_secs(60)).unwrap();
    store.persist("a").unwrap();
    assert!(store.exists("a").unwrap());
    let (keys, _) = store.list_page("", None, 2).unwrap();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(
        store.entries_page("c", None, 10).unwrap().0[0].value,
        &b"3"[..]
    );
    assert_eq!(store.delete_many(&["b", "c"]).unwrap(), 2);
    store.delete("a").unwrap();
    assert_eq!(store.delete_prefix("d").unwrap(), 1);
    assert_eq!(store.clear().unwrap(), 1);
    store.close().unwrap();
    assert!(matches!(store.get("a"), Err(Error::Closed)));

    // What was written is on disk: a new blocking store reads it.
    let again = kvs::blocking::open(&sqlite_config(dir.path())).unwrap();
    again.set("kept", b"yes", None).unwrap();
    drop(again);
    let third = kvs::blocking::open(&sqlite_config(dir.path())).unwrap();
    assert_eq!(third.get("kept").unwrap(), &b"yes"[..]);
}

#[test]
fn threads_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = kvs::blocking::open(&sqlite_config(dir.path())).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    store.increment("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.get("counter").unwrap(), &b"200"[..]);
}

/// Inside an async runtime every call says what to do instead, and
/// dropping the store there does not panic.
#[tokio::test]
async fn inside_an_async_runtime_it_says_so_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path());
    let err = kvs::blocking::open(&config).unwrap_err().to_string();
    assert!(
        err.contains("inside an async runtime") && err.contains(".await"),
        "{err}"
    );

    // Opened on a thread of its own, then used inside the runtime.
    let store = std::thread::spawn(move || kvs::blocking::open(&config).unwrap())
        .join()
        .unwrap();
    let err = store.set("k", b"v", None).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let in_blocking_task = store.clone();
    let err = tokio::task::spawn_blocking(move || in_blocking_task.get("k").unwrap_err())
        .await
        .unwrap();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    // The async store underneath works here.
    store.store().set("k", b"v", None).await.unwrap();
    assert_eq!(store.store().get("k").await.unwrap(), &b"v"[..]);
    drop(store);
}
