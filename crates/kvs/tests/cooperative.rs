//! Loops on a store that answers at once (memory) still yield to tokio:
//! every ready `StoreFuture` spends the task's cooperative budget, so the
//! runtime's timers and other tasks keep running. Without it, tasks
//! looping on `set` filled every worker of a multi-thread runtime: a 20 ms
//! timer fired after about 20 s, and a `close` queued behind a 1 ms sleep
//! never ran.

use kvs::{Config, Error, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Far above the milliseconds a timer needs on a loaded 2-core machine,
/// far below the seconds starvation costs.
const TIMER_MARGIN: Duration = Duration::from_secs(2);

/// Ends the test process if `what` has not finished after 30 s: a runtime
/// starved by loops that never yield cannot report the failure itself.
fn watchdog(what: &'static str) -> std::sync::mpsc::Sender<()> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(Duration::from_secs(30))
        {
            eprintln!("{what}: still running after 30 s; the loops starve the runtime");
            std::process::exit(1);
        }
    });
    done
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A task per worker, and one more, looping on `set` until the store closes.
fn spawn_loopers(store: &Arc<dyn Store>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..3)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let key = format!("k{i}");
                let mut sets = 0u64;
                loop {
                    match store.set(&key, b"v", None).await {
                        Ok(()) => sets += 1,
                        Err(Error::Closed) => return sets,
                        Err(e) => panic!("set failed: {e}"),
                    }
                }
            })
        })
        .collect()
}

#[test]
fn a_timer_fires_while_tasks_loop_on_a_memory_store() {
    let _watchdog = watchdog("a_timer_fires_while_tasks_loop_on_a_memory_store");
    runtime().block_on(async {
        let store = kvs::open(&Config::from_yaml("type: memory").unwrap())
            .await
            .unwrap();
        let loopers = spawn_loopers(&store);
        // The timer runs on a worker, beside the loopers.
        let timer = tokio::spawn(async {
            let start = Instant::now();
            tokio::time::sleep(Duration::from_millis(20)).await;
            start.elapsed()
        });
        let fired_after = timer.await.unwrap();
        eprintln!("a 20 ms timer fired after {fired_after:?}");
        assert!(
            fired_after < TIMER_MARGIN,
            "a 20 ms timer fired after {fired_after:?}: the loops starve the runtime"
        );
        store.close().await.unwrap();
        for looper in loopers {
            assert!(looper.await.unwrap() > 0);
        }
    });
}

#[test]
fn a_close_behind_a_sleep_stops_the_loops() {
    let _watchdog = watchdog("a_close_behind_a_sleep_stops_the_loops");
    runtime().block_on(async {
        let store = kvs::open(&Config::from_yaml("type: memory").unwrap())
            .await
            .unwrap();
        let loopers = spawn_loopers(&store);
        let start = Instant::now();
        let closer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                store.close().await
            })
        };
        closer.await.unwrap().unwrap();
        for looper in loopers {
            looper.await.unwrap();
        }
        let took = start.elapsed();
        eprintln!("the loops stopped {took:?} after the close was queued");
        assert!(took < TIMER_MARGIN, "the close waited {took:?}");
    });
}
