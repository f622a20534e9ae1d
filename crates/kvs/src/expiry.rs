//! Deadlines, the one rule that decides whether an entry is live, and the
//! clock that rule reads.
//!
//! Every backend that computes expiry itself (memory, SQLite, LevelDB, and
//! DynamoDB on read) stores a deadline from [`deadline_ms`] and asks
//! [`is_live`] on every read. Sweeps only reclaim space; correctness never
//! depends on them having run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The deadline of an entry that never expires.
pub const NEVER: u64 = u64::MAX;

/// The longest TTL any store accepts: 2^62 ms, about 146 million years.
///
/// One limit for every backend, so that the same call has the same answer
/// everywhere: the tightest engine limit is Redis's (`PX` plus the server's
/// clock must fit an `i64` of milliseconds), and SQLite keeps deadlines as
/// `i64` milliseconds too. A longer TTL is [`Error::InvalidTtl`](crate::Error::InvalidTtl)
/// before anything is written; "never expires" is `None` or `ZERO`.
pub const MAX_TTL: Duration = Duration::from_millis(1 << 62);

/// `Err(InvalidTtl)` if `ttl` is longer than [`MAX_TTL`]. Every write that
/// takes a TTL calls it before anything is written, on every backend.
///
/// ```
/// use std::time::Duration;
/// use kvs::expiry::{check_ttl, MAX_TTL};
///
/// assert!(check_ttl("k", None).is_ok());
/// assert!(check_ttl("k", Some(MAX_TTL)).is_ok());
/// assert!(check_ttl("k", Some(Duration::from_secs(u64::MAX))).is_err());
/// ```
pub fn check_ttl(key: &str, ttl: Option<Duration>) -> crate::Result<()> {
    match ttl {
        Some(ttl) if ttl > MAX_TTL => Err(crate::Error::InvalidTtl {
            key: key.to_owned(),
            ttl,
        }),
        _ => Ok(()),
    }
}

/// The deadline, in milliseconds since the Unix epoch, of an entry written at
/// `now_ms` with `ttl`.
///
/// `None` and `Some(Duration::ZERO)` mean "never" ([`NEVER`]). Otherwise the
/// TTL is rounded *up* to whole milliseconds, and together with the
/// inclusive rule in [`is_live`] an entry lives at least `ttl` and at most
/// `ttl` + 1 ms, whatever fraction of a millisecond `now_ms` dropped.
///
/// ```
/// use std::time::Duration;
/// use kvs::expiry::{deadline_ms, NEVER};
///
/// assert_eq!(deadline_ms(1_000, None), NEVER);
/// assert_eq!(deadline_ms(1_000, Some(Duration::ZERO)), NEVER);
/// assert_eq!(deadline_ms(1_000, Some(Duration::from_micros(1))), 1_001);
/// ```
pub fn deadline_ms(now_ms: u64, ttl: Option<Duration>) -> u64 {
    match ttl {
        None => NEVER,
        Some(ttl) if ttl.is_zero() => NEVER,
        Some(ttl) => {
            let ms = ttl.as_nanos().div_ceil(1_000_000);
            let ms = u64::try_from(ms).unwrap_or(NEVER);
            now_ms.saturating_add(ms)
        }
    }
}

/// Whether an entry with `deadline` is still live at `now_ms`.
///
/// The deadline itself is still live: the entry expires once the clock has
/// passed it.
///
/// ```
/// use kvs::expiry::{is_live, NEVER};
///
/// assert!(is_live(1_000, 1_000));
/// assert!(!is_live(1_000, 1_001));
/// assert!(is_live(NEVER, u64::MAX));
/// ```
#[inline]
pub fn is_live(deadline: u64, now_ms: u64) -> bool {
    deadline == NEVER || now_ms <= deadline
}

/// The time an entry with `deadline` has left at `now_ms`: `None` for an
/// entry that never expires. Only meaningful for a live entry.
///
/// ```
/// use std::time::Duration;
/// use kvs::expiry::{remaining, NEVER};
///
/// assert_eq!(remaining(NEVER, 5), None);
/// assert_eq!(remaining(1_500, 1_000), Some(Duration::from_millis(500)));
/// ```
pub fn remaining(deadline: u64, now_ms: u64) -> Option<Duration> {
    (deadline != NEVER).then(|| Duration::from_millis(deadline.saturating_sub(now_ms)))
}

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
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(NEVER - 1))
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
        let ms = u64::try_from(by.as_nanos().div_ceil(1_000_000)).unwrap_or(NEVER - 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// An entry lives at least its TTL and at most 1 ms longer, for any
        /// sub-millisecond position of the real write time.
        #[test]
        fn entries_live_at_least_their_ttl(
            now_us in 0u64..1_000_000_000, ttl_us in 1u64..100_000_000
        ) {
            let deadline = deadline_ms(now_us / 1000, Some(Duration::from_micros(ttl_us)));
            let expires_at_us = (now_us + ttl_us).div_ceil(1000) * 1000;
            // The first whole millisecond at which the entry must be gone...
            let first_dead_ms = deadline + 1;
            // ...comes no earlier than the TTL allows and at most 1 ms + rounding later.
            prop_assert!(first_dead_ms * 1000 >= now_us + ttl_us);
            prop_assert!(first_dead_ms * 1000 <= expires_at_us + 2000);
            prop_assert!(is_live(deadline, deadline));
            prop_assert!(!is_live(deadline, deadline + 1));
        }
    }

    #[test]
    fn huge_ttls_saturate_to_never() {
        assert_eq!(deadline_ms(5, Some(Duration::MAX)), NEVER);
        assert!(is_live(
            deadline_ms(u64::MAX - 1, Some(Duration::from_secs(1))),
            u64::MAX - 1
        ));
    }
}
