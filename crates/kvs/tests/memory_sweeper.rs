//! The memory store's sweep threads end with `close`, seen from outside:
//! this file holds one test, so no other test's threads are counted.

use kvs::{BackendKind, Config};

/// Threads of this process whose name starts with `prefix` (Linux only).
fn threads_named(prefix: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Polls (bounded) until `threads_named(prefix)` is `want`, and returns the
/// last count. Both directions lag a little behind what the store did: a new
/// thread sets its own name a moment after it starts, and a joined thread
/// leaves `/proc/self/task` a moment after `join` returns (the kernel wakes
/// the joiner when it clears the thread id, before it unlists the task).
fn settle(prefix: &str, want: usize) -> usize {
    for _ in 0..200 {
        if threads_named(prefix) == want {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    threads_named(prefix)
}

#[tokio::test]
async fn close_leaves_no_sweep_thread_behind() {
    if !std::path::Path::new("/proc/self/task").exists() {
        eprintln!("!!!!! SKIPPED: no /proc on this platform to count threads");
        return;
    }
    // Thread names are cut to 15 bytes by the kernel.
    const NAME: &str = "kvs-memory-swee";
    let before = threads_named(NAME);
    let mut stores = Vec::new();
    for i in 0..10 {
        let mut config = Config::new(BackendKind::Memory);
        config.namespace = format!("ns{i}");
        stores.push(kvs::open(&config).await.unwrap());
    }
    assert_eq!(
        settle(NAME, before + 10),
        before + 10,
        "one sweep thread per store"
    );
    for store in &stores {
        store.close().await.unwrap();
    }
    assert_eq!(
        settle(NAME, before),
        before,
        "close must end every sweep thread"
    );
    // Dropping an unclosed store ends its thread too.
    let store = kvs::open(&Config::new(BackendKind::Memory)).await.unwrap();
    assert_eq!(settle(NAME, before + 1), before + 1);
    drop(store);
    assert_eq!(
        settle(NAME, before),
        before,
        "drop must end the sweep thread"
    );
}
