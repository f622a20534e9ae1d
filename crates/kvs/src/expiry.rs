//! The clock that every expiry rule reads, and the longest TTL a store
//! accepts.
//!
//! Stores read the time through a [`Clock`], so tests can move it with a
//! [`ManualClock`] instead of sleeping. The arithmetic on deadlines is in
//! [`raw`](crate::raw), for backend authors.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest TTL any store accepts: 2^62 ms, about 146 million years.
///
/// One limit for every backend, so that the same call has the same answer
/// everywhere: the tightest engine limit is Redis's (`PX` plus the server's
/// clock must fit an `i64` of milliseconds), and SQLite keeps deadlines as
/// `i64` milliseconds too. A longer TTL is [`Error::InvalidTtl`](crate::Error::InvalidTtl)
/// before anything is written; "never expires" is `None` or `ZERO`.
pub const MAX_TTL: Duration = Duration::from_millis(1 << 62);

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Stores read the time through a `Clock` so that tests can move it with a
/// [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as the epoch: entries then live
        // longer, never shorter, than asked.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use kvs::expiry::{Clock, ManualClock};
///
/// let clock = ManualClock::new(5_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(shared.now_ms(), 7_000);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `now_ms` until advanced.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    /// Moves the clock forward by `by`, rounded up to whole milliseconds.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX - 1);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// A clock starting at the current system time.
    fn default() -> ManualClock {
        ManualClock::new(SystemClock.now_ms())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
