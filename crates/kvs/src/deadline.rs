//! Deadlines, and the one rule that decides whether an entry is live.
//!
//! Every backend that computes expiry itself (memory, SQLite, LevelDB, and
//! DynamoDB on read) stores a deadline from [`deadline_ms`] and asks
//! [`is_live`] on every read. Sweeps only reclaim space; correctness never
//! depends on them having run. Public through [`raw`](crate::raw).

use crate::expiry::MAX_TTL;
use std::time::Duration;

/// The deadline of an entry that never expires.
pub const NEVER: u64 = u64::MAX;

/// `Err(InvalidTtl)` if `ttl` is longer than [`MAX_TTL`]. Every write that
/// takes a TTL calls it before anything is written, on every backend.
///
/// ```
/// use std::time::Duration;
/// use kvs::expiry::MAX_TTL;
/// use kvs::raw::check_ttl;
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

/// [`check_ttl`] for a batch written with one `ttl`: the error names the
/// batch's first key. An empty batch has nothing to check.
///
/// ```
/// use std::time::Duration;
/// use kvs::raw::check_batch_ttl;
///
/// let entries: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"2")];
/// assert!(check_batch_ttl(entries, Some(Duration::from_secs(5))).is_ok());
/// assert!(check_batch_ttl(entries, Some(Duration::MAX)).is_err());
/// assert!(check_batch_ttl(&[], Some(Duration::MAX)).is_ok());
/// ```
pub fn check_batch_ttl(entries: &[(&str, &[u8])], ttl: Option<Duration>) -> crate::Result<()> {
    entries
        .first()
        .map_or(Ok(()), |(key, _)| check_ttl(key, ttl))
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
/// use kvs::raw::{deadline_ms, NEVER};
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
/// use kvs::raw::{is_live, NEVER};
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
/// use kvs::raw::{remaining, NEVER};
///
/// assert_eq!(remaining(NEVER, 5), None);
/// assert_eq!(remaining(1_500, 1_000), Some(Duration::from_millis(500)));
/// ```
pub fn remaining(deadline: u64, now_ms: u64) -> Option<Duration> {
    (deadline != NEVER).then(|| Duration::from_millis(deadline.saturating_sub(now_ms)))
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
