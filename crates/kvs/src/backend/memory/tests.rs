use super::*;
use crate::expiry::ManualClock;

fn store_with_clock(interval: Duration) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let config = MemoryConfig {
        cleanup_interval: interval,
        ..MemoryConfig::default()
    };
    let store = MemoryStore::with_clock("t", config, Arc::new(clock.clone())).unwrap();
    (store, clock)
}

fn check(store: &MemoryStore) {
    let mut held = (0, 0);
    for shard in store.inner.shards.iter() {
        let shard = shard.read();
        shard.check_invariants(&store.inner.hasher);
        let (entries, bytes) = shard.usage();
        held = (held.0 + entries, held.1 + bytes);
    }
    if let Some(counted) = store.usage() {
        assert_eq!(
            counted, held,
            "invariant 3: the bound counts what the shards hold"
        );
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

// ---- the bound (max_entries, max_bytes) --------------------------------

fn bounded(max_entries: Option<usize>, max_bytes: Option<usize>) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let config = MemoryConfig {
        cleanup_interval: Duration::ZERO,
        max_entries,
        max_bytes,
    };
    let store = MemoryStore::with_clock("t", config, Arc::new(clock.clone())).unwrap();
    (store, clock)
}

#[test]
fn the_bound_holds_under_64_writing_threads() {
    const BOUND: usize = 1_000;
    let (store, _clock) = bounded(Some(BOUND), Some(BOUND * 40));
    let store = Arc::new(store);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Acquire) {
                let (entries, bytes) = store.usage().unwrap();
                assert!(
                    entries <= BOUND && bytes <= BOUND * 40,
                    "{entries} entries, {bytes} bytes"
                );
                // All the read locks at once: a consistent count (writers
                // hold one lock at a time).
                let shards: Vec<_> = store.inner.shards.iter().map(|s| s.read()).collect();
                peak = peak.max(shards.iter().map(|s| s.len()).sum::<usize>());
            }
            peak
        })
    };
    let writers: Vec<_> = (0..64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..2_000u32 {
                    let key = format!("t{t}:{}", i % 700);
                    let value = vec![b'v'; (i % 30) as usize];
                    match i % 5 {
                        0 => drop(store.increment_now(&format!("n{t}:{}", i % 50), 1)),
                        1 => drop(store.compare_and_swap_now(&key, None, &value, None)),
                        2 => drop(store.get_now(&key)),
                        _ => store.set_now(&key, &value, None).unwrap(),
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let peak = watcher.join().unwrap();
    assert!(peak <= BOUND, "the shards held {peak} entries");
    assert!(store.evictions() > 0);
    check(&store);
    assert!(entries_len(&store) <= BOUND);
}

#[tokio::test]
async fn entries_read_since_the_hand_passed_survive_eviction() {
    let (store, _clock) = bounded(Some(64 * 4), None);
    for i in 0..64 * 4 {
        store.set(&format!("k{i}"), b"v", None).await.unwrap();
    }
    let hot: Vec<String> = (0..64 * 4).step_by(8).map(|i| format!("k{i}")).collect();
    for round in 0..64 * 4 {
        for key in &hot {
            store.get(key).await.unwrap();
        }
        store.set(&format!("new{round}"), b"v", None).await.unwrap();
    }
    for key in &hot {
        assert!(
            store.exists(key).await.unwrap(),
            "{key}, read every round, was evicted"
        );
    }
    assert_eq!(store.count("").await.unwrap(), 64 * 4);
    check(&store);
}

#[tokio::test]
async fn expired_entries_go_first() {
    let (store, clock) = bounded(Some(10), None);
    for i in 0..5 {
        store
            .set(&format!("short{i}"), b"v", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        store.set(&format!("long{i}"), b"v", None).await.unwrap();
    }
    clock.advance(Duration::from_secs(2));
    for i in 0..5 {
        store.set(&format!("new{i}"), b"v", None).await.unwrap();
    }
    for i in 0..5 {
        assert!(store.exists(&format!("long{i}")).await.unwrap());
    }
    assert_eq!(store.count("").await.unwrap(), 10);
    check(&store);
}

#[tokio::test]
async fn max_bytes_counts_keys_and_values() {
    let (store, _clock) = bounded(None, Some(100));
    let too_big = vec![0u8; 100];
    store.set("keep", b"1234", None).await.unwrap();
    assert!(matches!(
        store.set("big", &too_big, None).await,
        Err(Error::ValueTooLarge {
            size: 103,
            limit: 100,
            ..
        })
    ));
    assert_eq!(
        &store.get("keep").await.unwrap()[..],
        b"1234",
        "a refusal changes nothing"
    );
    for i in 0..20 {
        store
            .set(&format!("k{i:02}"), &[b'x'; 7], None)
            .await
            .unwrap();
        let (_, bytes) = store.usage().unwrap();
        assert!(bytes <= 100, "{bytes} bytes");
    }
    assert_eq!(
        store.usage().unwrap(),
        (10, 100),
        "ten entries of 3 + 7 bytes"
    );
    check(&store);
    store.delete_prefix("").await.unwrap();
    assert_eq!(store.usage().unwrap(), (0, 0));
}

#[tokio::test]
async fn counters_and_swaps_are_counted_exactly() {
    let (store, _clock) = bounded(Some(1_000), Some(100_000));
    for i in 0..500i64 {
        store
            .increment("n", if i % 2 == 0 { 1_000_000_007 } else { -3 })
            .await
            .unwrap();
        store
            .compare_and_swap("c", None, b"first", None)
            .await
            .unwrap();
        store
            .compare_and_swap("c", Some(b"nope"), b"x", None)
            .await
            .unwrap();
        let _ = store.increment("c", 1).await;
    }
    check(&store);
    store.delete("n").await.unwrap();
    store.delete("c").await.unwrap();
    assert_eq!(store.usage().unwrap(), (0, 0));
}
