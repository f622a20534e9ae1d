//! The bound of a bounded memory store (`max_entries`, `max_bytes`): what
//! it holds, counted across every shard, and room made by eviction.
//!
//! # Never above the bound
//!
//! A write *reserves* its entry and bytes before it takes its shard's
//! lock, by compare-and-swap on the shared counters, and only succeeds
//! when the counters stay within the bound; otherwise it evicts one entry
//! (from its own shard first, then the others, one lock at a time, so no
//! two shard locks are ever held together) and tries again. The counters
//! therefore never exceed the bound, and what the shards hold never
//! exceeds the counters: an entry is counted from its reservation until
//! its removal. Replacing a key reserves the new entry in full and gives
//! back the old one after the swap, so a replacement may evict an entry
//! it did not strictly need to — never one too few.
//!
//! # Which entry goes
//!
//! An expired entry if the shard has one; else CLOCK (second chance): a
//! hand walks the shard's slots, a slot read since the hand last passed
//! is spared once, and the first one not read is evicted. It approximates
//! LRU without any write on the read path beyond one relaxed flag.

use metrics::Counter;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The cost of one entry against `max_bytes`: its key and value bytes.
pub(super) fn cost(key_len: usize, value_len: usize) -> usize {
    key_len.saturating_add(value_len)
}

/// The bound and what is counted against it.
pub(super) struct Bounds {
    pub(super) max_entries: usize,
    pub(super) max_bytes: usize,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    evictions: AtomicU64,
    evicted: Counter,
}

impl Bounds {
    pub(super) fn new(
        max_entries: Option<usize>,
        max_bytes: Option<usize>,
        namespace: &str,
    ) -> Bounds {
        Bounds {
            max_entries: max_entries.unwrap_or(usize::MAX),
            max_bytes: max_bytes.unwrap_or(usize::MAX),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            evicted: metrics::counter!(
                "kvs_evictions_total",
                "backend" => "memory",
                "namespace" => namespace.to_owned()
            ),
        }
    }

    /// Counts one entry of `bytes` if both stay within the bound.
    pub(super) fn try_reserve(&self, bytes: usize) -> bool {
        if !add_within(&self.entries, 1, self.max_entries) {
            return false;
        }
        if !add_within(&self.bytes, bytes, self.max_bytes) {
            self.entries.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back `entries` entries of `bytes` in all.
    pub(super) fn release(&self, entries: usize, bytes: usize) {
        self.entries.fetch_sub(entries, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub(super) fn count_eviction(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        self.evicted.increment(1);
    }

    /// Entries and bytes counted now.
    pub(super) fn usage(&self) -> (usize, usize) {
        (
            self.entries.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }

    pub(super) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// `counter += n` if the result stays at most `max`.
fn add_within(counter: &AtomicUsize, n: usize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
            current.checked_add(n).filter(|&next| next <= max)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_bound() {
        let bounds = Bounds::new(Some(2), Some(10), "t");
        assert!(bounds.try_reserve(4));
        assert!(bounds.try_reserve(6));
        assert!(!bounds.try_reserve(0), "a third entry");
        bounds.release(1, 6);
        assert!(!bounds.try_reserve(7), "11 bytes");
        assert_eq!(
            bounds.usage(),
            (1, 4),
            "a refused reservation leaves no trace"
        );
        assert!(bounds.try_reserve(6));
    }
}
