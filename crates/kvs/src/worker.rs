//! The request loop of a backend whose engine runs on a thread of its own
//! (each LevelDB database): wait for a request, then take every request
//! already waiting, so that they are handled — and their writes committed
//! — together.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// How long an idle worker polls before it sleeps. A task awaiting one
/// answer usually sends its next request within microseconds, while waking
/// a sleeping thread costs tens of microseconds on some machines; polling
/// this briefly keeps one task's request rate from being bounded by
/// wake-ups, at the price of at most this much CPU after each batch.
const SPIN: Duration = Duration::from_micros(50);

/// What a worker should do next.
pub(crate) enum Next<T> {
    /// Handle these requests, in order (never empty).
    Batch(Vec<T>),
    /// Nothing arrived before the deadline: do the periodic work.
    Due,
    /// Every sender is gone: stop.
    Closed,
}

/// Waits for requests on `queue` until `due` (or forever), and returns up
/// to `max` of them.
pub(crate) fn next_batch<T>(queue: &Receiver<T>, max: usize, due: Option<Instant>) -> Next<T> {
    let spin_until = Instant::now() + SPIN;
    let first = loop {
        match queue.try_recv() {
            Ok(request) => break request,
            Err(TryRecvError::Disconnected) => return Next::Closed,
            Err(TryRecvError::Empty) if Instant::now() < spin_until => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => {
                let received = match due {
                    Some(due) => queue.recv_timeout(due.saturating_duration_since(Instant::now())),
                    None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(request) => break request,
                    Err(RecvTimeoutError::Timeout) => return Next::Due,
                    Err(RecvTimeoutError::Disconnected) => return Next::Closed,
                }
            }
        }
    };
    let mut batch = vec![first];
    while batch.len() < max {
        match queue.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    Next::Batch(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn batches_what_is_waiting_up_to_the_limit() {
        let (tx, rx) = channel();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert!(matches!(next_batch(&rx, 3, None), Next::Batch(b) if b == vec![0, 1, 2]));
        assert!(matches!(next_batch(&rx, 3, None), Next::Batch(b) if b == vec![3, 4]));
        let soon = Instant::now() + Duration::from_millis(5);
        assert!(matches!(next_batch(&rx, 3, Some(soon)), Next::Due));
        drop(tx);
        assert!(matches!(next_batch(&rx, 3, None), Next::Closed));
    }
}
