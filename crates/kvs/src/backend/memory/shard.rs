//! One shard of a [`MemoryStore`](super::MemoryStore): a slab of slots, a
//! hash index and an ordered index over it, and the shard's deadlines.

use super::bounds::{cost, Bounds};
use crate::deadline::{is_live, NEVER};
use bytes::Bytes;
use compact_str::CompactString;
use hashbrown::HashTable;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Number of shards; a power of two so that picking one is a mask.
pub(super) const SHARDS: usize = 64;

/// Hashes keys for both the shard choice and the shard's hash table.
///
/// The shard is chosen by bits 32..38 of the hash. `hashbrown` uses the low
/// bits to pick a bucket and the top 7 bits as a tag, so neither loses
/// entropy to the shard choice (below 2^32 buckets per shard).
pub(super) struct KeyHasher(pub(super) foldhash::fast::FixedState);

impl KeyHasher {
    pub(super) fn hash(&self, key: &str) -> u64 {
        self.0.hash_one(key)
    }

    pub(super) fn shard(hash: u64) -> usize {
        (hash >> 32) as usize & (SHARDS - 1)
    }
}

/// One shard's entries.
///
/// Invariants, kept by [`Shard::insert`] and [`Shard::remove_slot`] and
/// nothing else:
/// 1. `index` and `order` hold exactly the occupied slots of `slots`, each
///    once, under the slot's key; `free` holds exactly the empty slots.
/// 2. `expirations` holds `(d, i)` exactly when slot `i` is occupied and its
///    `expires_at == d != NEVER`. The sweep relies on this to find expired
///    entries without scanning, and never to remove a newer value.
/// 3. With `bounds`, every occupied slot is counted there (the writer
///    reserved it); `insert` gives back a replaced entry and `remove_slot`
///    a removed one, so nothing is counted twice or left counted.
#[derive(Default)]
pub(super) struct Shard {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slot numbers by the hash of their key, for point operations.
    index: HashTable<u32>,
    /// Slot numbers by key, in byte order, for prefix listing.
    pub(super) order: BTreeMap<CompactString, u32>,
    expirations: BTreeSet<(u64, u32)>,
    /// The store's bound, if it has one (see `bounds.rs`).
    bounds: Option<Arc<Bounds>>,
    /// The CLOCK hand: the slot eviction looks at next.
    hand: usize,
}

pub(super) struct Slot {
    key: CompactString,
    pub(super) value: Bytes,
    /// Milliseconds since the epoch; [`NEVER`] for no TTL.
    pub(super) expires_at: u64,
    /// Read since the CLOCK hand last passed (eviction spares it once).
    referenced: AtomicBool,
}

impl Slot {
    /// Marks the slot as read, for eviction. Only a bounded store's reads
    /// call this; the load first keeps a hot slot's cache line shared.
    pub(super) fn mark_read(&self) {
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn is_live(&self, now: impl FnOnce() -> u64) -> bool {
        self.expires_at == NEVER || is_live(self.expires_at, now())
    }
}

impl Shard {
    /// An empty shard counting its entries against `bounds`.
    pub(super) fn with_bounds(bounds: Option<Arc<Bounds>>) -> Shard {
        Shard {
            bounds,
            ..Shard::default()
        }
    }

    pub(super) fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                slots[i as usize].as_ref().is_some_and(|s| s.key == key)
            })
            .copied()
    }

    pub(super) fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    pub(super) fn get(&self, hash: u64, key: &str) -> Option<&Slot> {
        self.find(hash, key).and_then(|i| self.slot(i))
    }

    /// Stores `value` under `key`; returns the replaced value so that the
    /// caller can free it after releasing the lock.
    pub(super) fn insert(
        &mut self,
        hasher: &KeyHasher,
        hash: u64,
        key: &str,
        value: Bytes,
        expires_at: u64,
    ) -> Option<Bytes> {
        if let Some(i) = self.find(hash, key) {
            let slot = self.slots[i as usize].as_mut()?;
            if slot.expires_at != expires_at {
                if slot.expires_at != NEVER {
                    self.expirations.remove(&(slot.expires_at, i));
                }
                if expires_at != NEVER {
                    self.expirations.insert((expires_at, i));
                }
                slot.expires_at = expires_at;
            }
            let old = std::mem::replace(&mut slot.value, value);
            if let Some(bounds) = &self.bounds {
                bounds.release(1, cost(key.len(), old.len()));
            }
            return Some(old);
        }
        let key = CompactString::from(key);
        let slot = Slot {
            key: key.clone(),
            value,
            expires_at,
            referenced: AtomicBool::new(false),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                // 2^32 entries in one shard would not fit in memory anyway.
                let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Some(slot));
                i
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, i, |&j| {
            slots[j as usize]
                .as_ref()
                .map_or(0, |s| hasher.hash(&s.key))
        });
        self.order.insert(key, i);
        if expires_at != NEVER {
            self.expirations.insert((expires_at, i));
        }
        None
    }

    /// Gives slot `i` a new deadline, keeping invariant 2.
    pub(super) fn set_deadline(&mut self, i: u32, expires_at: u64) {
        let Some(slot) = self.slots.get_mut(i as usize).and_then(Option::as_mut) else {
            return;
        };
        if slot.expires_at != NEVER {
            self.expirations.remove(&(slot.expires_at, i));
        }
        if expires_at != NEVER {
            self.expirations.insert((expires_at, i));
        }
        slot.expires_at = expires_at;
    }

    /// The live slot of `key`, if any.
    pub(super) fn live(&self, hash: u64, key: &str, now_ms: u64) -> Option<(u32, &Slot)> {
        let i = self.find(hash, key)?;
        let slot = self.slot(i)?;
        slot.is_live(|| now_ms).then_some((i, slot))
    }

    /// The live keys starting with `prefix` and after `start_after`, in
    /// order. Only a shard holding an expired (not yet swept) entry needs
    /// each key's deadline checked; by invariant 2 the others need no
    /// lookups.
    pub(super) fn page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a CompactString> + 'a {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let check = self.has_expired(now_ms);
        self.order
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
            .filter(move |(_, &i)| !check || self.slot(i).is_some_and(|s| s.is_live(|| now_ms)))
            .map(|(key, _)| key)
    }

    /// Empties slot `i`, whose key hashes to `hash`, and returns what it held.
    pub(super) fn remove_slot(&mut self, hash: u64, i: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(i as usize)?.take()?;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.order.remove(&slot.key);
        if slot.expires_at != NEVER {
            self.expirations.remove(&(slot.expires_at, i));
        }
        self.free.push(i);
        if let Some(bounds) = &self.bounds {
            bounds.release(1, cost(slot.key.len(), slot.value.len()));
        }
        Some(slot)
    }

    /// Removes one entry to make room: an expired one if there is one,
    /// else the first the CLOCK hand finds unread since it last passed,
    /// in one turn of the hand (clearing the marks it passes). `None` if
    /// every entry was read (try another shard, or this one again) or the
    /// shard is empty.
    pub(super) fn evict_one(&mut self, hasher: &KeyHasher, now_ms: u64) -> Option<Slot> {
        if let Some(&(deadline, i)) = self.expirations.first() {
            if !is_live(deadline, now_ms) {
                let hash = self.slot(i).map_or(0, |s| hasher.hash(&s.key));
                return self.remove_slot(hash, i);
            }
        }
        let n = self.slots.len();
        for _ in 0..n {
            let i = self.hand % n;
            self.hand = i + 1;
            let Some(slot) = self.slots.get(i).and_then(Option::as_ref) else {
                continue;
            };
            if slot.referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            let hash = hasher.hash(&slot.key);
            return self.remove_slot(hash, i as u32);
        }
        None
    }

    pub(super) fn remove(&mut self, hash: u64, key: &str) -> Option<Slot> {
        let i = self.find(hash, key)?;
        self.remove_slot(hash, i)
    }

    /// Whether some entry's deadline has passed at `now_ms`.
    pub(super) fn has_expired(&self, now_ms: u64) -> bool {
        self.expirations
            .first()
            .is_some_and(|(deadline, _)| !is_live(*deadline, now_ms))
    }

    /// Removes up to `limit` expired entries, oldest deadline first.
    pub(super) fn pop_expired(&mut self, hasher: &KeyHasher, now_ms: u64, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit && self.has_expired(now_ms) {
            let Some(&(_, i)) = self.expirations.first() else {
                break;
            };
            let hash = self.slot(i).map_or(0, |s| hasher.hash(&s.key));
            if self.remove_slot(hash, i).is_none() {
                // Unreachable while invariant 2 holds; never loop forever on it.
                self.expirations.pop_first();
            }
            removed += 1;
        }
        removed
    }

    /// The live keys of this shard that start with `prefix`, in order.
    pub(super) fn matching<'a>(
        &'a self,
        prefix: &'a str,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a CompactString> + 'a {
        self.page(prefix, None, now_ms)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// The entries and their cost, as the bound counts them.
    #[cfg(test)]
    pub(super) fn usage(&self) -> (usize, usize) {
        let occupied = self.slots.iter().flatten();
        let bytes = occupied
            .clone()
            .map(|s| cost(s.key.len(), s.value.len()))
            .sum();
        (occupied.count(), bytes)
    }

    /// How many deadlines the shard tracks.
    #[cfg(test)]
    pub(super) fn expirations_len(&self) -> usize {
        self.expirations.len()
    }

    /// How many slots the slab holds, occupied or free.
    #[cfg(test)]
    pub(super) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    /// Panics unless the invariants on [`Shard`] hold.
    #[cfg(test)]
    pub(super) fn check_invariants(&self, hasher: &KeyHasher) {
        let occupied: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slot(i).is_some())
            .collect();
        assert_eq!(
            occupied.len() + self.free.len(),
            self.slots.len(),
            "invariant 1: free list"
        );
        assert_eq!(self.index.len(), occupied.len(), "invariant 1: index");
        assert_eq!(self.order.len(), occupied.len(), "invariant 1: order");
        let mut deadlines = BTreeSet::new();
        for &i in &occupied {
            let slot = self.slot(i).expect("occupied");
            assert_eq!(self.find(hasher.hash(&slot.key), &slot.key), Some(i));
            assert_eq!(self.order.get(&slot.key), Some(&i));
            if slot.expires_at != NEVER {
                deadlines.insert((slot.expires_at, i));
            }
        }
        assert_eq!(deadlines, self.expirations, "invariant 2: expirations");
    }
}
