use super::*;
use crate::expiry::ManualClock;

fn store_with_clock(interval: Duration) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let config = MemoryConfig {
        cleanup_interval: interval,
    };
    let store = MemoryStore::with_clock("t", config, Arc::new(clock.clone())).unwrap();
    (store, clock)
}

fn check(store: &MemoryStore) {
    for shard in store.inner.shards.iter() {
        shard.read().check_invariants(&store.inner.hasher);
    }
}

fn expirations_len(store: &MemoryStore) -> usize {
    store
        .inner
        .shards
        .iter()
        .map(|s| s.read().expirations_len())
        .sum()
}

fn entries_len(store: &MemoryStore) -> usize {
    store.inner.shards.iter().map(|s| s.read().len()).sum()
}

#[tokio::test]
async fn sweep_removes_only_expired_entries() {
    let (store, clock) = store_with_clock(Duration::ZERO);
    for i in 0..100 {
        let ttl = (i % 2 == 0).then(|| Duration::from_secs(1));
        store.set(&format!("k{i}"), b"v", ttl).await.unwrap();
    }
    assert_eq!(store.purge_expired(), 0);
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.purge_expired(), 50);
    assert_eq!(entries_len(&store), 50);
    assert_eq!(expirations_len(&store), 0);
    check(&store);
}

#[tokio::test]
async fn overwrite_and_delete_keep_the_expiry_index_in_step() {
    let (store, clock) = store_with_clock(Duration::ZERO);
    store
        .set("a", b"1", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    store
        .set("a", b"2", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(expirations_len(&store), 1);
    store.set("a", b"3", None).await.unwrap();
    assert_eq!(expirations_len(&store), 0);
    store
        .set("b", b"1", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    store.delete("b").await.unwrap();
    assert_eq!(expirations_len(&store), 0);
    // A stale index entry would make the sweep delete the new value.
    store
        .set("c", b"old", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    store
        .set("c", b"new", Some(Duration::from_secs(100)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.purge_expired(), 0);
    assert_eq!(&store.get("c").await.unwrap()[..], b"new");
    check(&store);
}

#[tokio::test]
async fn get_shares_the_stored_buffer() {
    let (store, _) = store_with_clock(Duration::ZERO);
    store.set("k", &[7; 4096], None).await.unwrap();
    let a = store.get("k").await.unwrap();
    let b = store.get("k").await.unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr(), "get must not copy the value");
    // An overwrite swaps in a new buffer; the one handed out is unchanged.
    store.set("k", &[8; 4096], None).await.unwrap();
    assert_eq!(&a[..], &[7; 4096][..]);
    assert_eq!(&store.get("k").await.unwrap()[..], &[8; 4096][..]);
}

#[tokio::test]
async fn background_sweep_runs_and_stops_on_close() {
    let (store, clock) = store_with_clock(Duration::from_millis(10));
    assert!(store.sweeper_running());
    store
        .set("k", b"v", Some(Duration::from_millis(1)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    // Wait (bounded) for the sweep thread to reclaim the entry.
    for _ in 0..500 {
        if entries_len(&store) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(entries_len(&store), 0, "the sweep never ran");
    store.close().await.unwrap();
    assert!(!store.sweeper_running());
    assert!(
        store.sweeper.lock().is_none(),
        "close must join the sweep thread"
    );
}

proptest::proptest! {
    /// Random writes, deletes, clock moves and sweeps keep every shard's
    /// invariants.
    #[test]
    fn invariants_hold(ops in proptest::collection::vec((0u8..4, 0u16..64, 0u8..3), 1..200)) {
        let (store, clock) = store_with_clock(Duration::ZERO);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for (op, key, ttl) in ops {
                let key = format!("k{key}");
                let ttl = [None, Some(Duration::from_secs(1)), Some(Duration::from_secs(5))][usize::from(ttl)];
                match op {
                    0 | 1 => store.set(&key, b"v", ttl).await.unwrap(),
                    2 => store.delete(&key).await.unwrap(),
                    _ => {
                        clock.advance(Duration::from_millis(700));
                        store.purge_expired();
                    }
                }
            }
        });
        check(&store);
        let slots: usize = store.inner.shards.iter().map(|s| s.read().slots_len()).sum();
        proptest::prop_assert!(slots <= 64, "{} slots for at most 64 keys: freed slots must be reused", slots);
    }
}

#[test]
fn sweep_thread_ends_when_the_store_is_dropped() {
    let (store, _) = store_with_clock(Duration::from_secs(3600));
    let weak = Arc::downgrade(&store.inner);
    drop(store);
    assert!(
        weak.upgrade().is_none(),
        "the sweep thread must not keep the store alive"
    );
}

#[test]
fn no_sweep_thread_when_interval_is_zero() {
    let (store, _) = store_with_clock(Duration::ZERO);
    assert!(!store.sweeper_running());
}
