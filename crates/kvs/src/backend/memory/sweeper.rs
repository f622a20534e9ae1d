//! The background expiry sweep of a [`MemoryStore`](super::MemoryStore).

use super::Inner;
use crate::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// The background expiry sweep: a thread that calls `purge_expired` every
/// interval until stopped or until the store is gone.
pub(super) struct Sweeper {
    signal: Arc<StopSignal>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
pub(super) struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Sweeper {
    pub(super) fn start(store: Weak<Inner>, interval: Duration) -> Result<Sweeper> {
        let signal = Arc::new(StopSignal::default());
        let thread_signal = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("kvs-memory-sweep".into())
            // The loop needs little stack; keep many stores cheap.
            .stack_size(128 * 1024)
            .spawn(move || sweep_loop(&store, interval, &thread_signal))
            .map_err(|e| Error::backend("memory", "starting the expiry sweep thread", e))?;
        Ok(Sweeper { signal, thread })
    }

    /// Whether the thread is still running.
    pub(super) fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops the thread and waits for it; it is at most finishing one batch.
    pub(super) fn stop(self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
        if self.thread.join().is_err() {
            tracing::error!("kvs memory sweep thread panicked");
        }
    }
}

fn sweep_loop(store: &Weak<Inner>, interval: Duration, signal: &StopSignal) {
    loop {
        {
            let mut stopped = signal.stopped.lock();
            if !*stopped {
                signal
                    .wake
                    .wait_while_for(&mut stopped, |stopped| !*stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        // Holding only a `Weak` lets the store be dropped while we sleep.
        match store.upgrade() {
            Some(inner) => {
                inner.purge_expired();
            }
            None => return,
        }
    }
}
