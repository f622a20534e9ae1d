//! The fixed workloads: what each task does, on which keys.
//!
//! Keys are 16 bytes: `k` + 15 digits for the main key space (`keys` of
//! them, 100-byte values) and `j` + 15 digits for the 4 KB space (at most
//! [`LARGE_KEYS`] of them, so a run's memory stays bounded). A listing
//! prefix is `k` + 13 digits: exactly 100 keys match it.

use std::fmt;

/// The size of the small values.
pub const SMALL: usize = 100;
/// The size of the large values.
pub const LARGE: usize = 4096;
/// At most this many keys hold 4 KB values.
pub const LARGE_KEYS: usize = 10_000;
/// Keys a listing prefix matches.
pub const MATCHES: usize = 100;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `set` of a value of this many bytes to a random existing key.
    Set(usize),
    /// `get` of a random existing key holding a value of this many bytes.
    Get(usize),
    /// 90% `get`, 10% `set`, 100-byte values.
    Mix,
    /// `list` of the 100 keys under a random prefix.
    List,
    /// `count` of the 100 keys under a random prefix.
    Count,
}

impl Workload {
    /// Every workload, in the order they run: reads first, so that writes
    /// cannot change what the reads see.
    pub const ALL: [Workload; 7] = [
        Workload::Get(SMALL),
        Workload::Get(LARGE),
        Workload::Mix,
        Workload::List,
        Workload::Count,
        Workload::Set(SMALL),
        Workload::Set(LARGE),
    ];

    /// The workload of [`ALL`](Workload::ALL) called `name` (as [`name`](Workload::name) spells it).
    ///
    /// ```
    /// use kvs_bench::Workload;
    /// assert_eq!(Workload::from_name("list_100"), Some(Workload::List));
    /// assert_eq!(Workload::from_name("list"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The name used in tables and JSON: `get_100B`, `set_4KB`, `mix_90_10`,
    /// `list_100`, `count_100`.
    pub fn name(self) -> String {
        fn size(bytes: usize) -> String {
            if bytes.is_multiple_of(1024) {
                format!("{}KB", bytes / 1024)
            } else {
                format!("{bytes}B")
            }
        }
        match self {
            Workload::Set(n) => format!("set_{}", size(n)),
            Workload::Get(n) => format!("get_{}", size(n)),
            Workload::Mix => "mix_90_10".into(),
            Workload::List => format!("list_{MATCHES}"),
            Workload::Count => format!("count_{MATCHES}"),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The key of index `i` in the small space.
pub fn small_key(i: usize) -> String {
    format!("k{i:015}")
}

/// The key of index `i` in the 4 KB space.
pub fn large_key(i: usize) -> String {
    format!("j{i:015}")
}

/// The prefix of block `b`: the 100 small keys `100 b .. 100 b + 99`.
pub fn block_prefix(b: usize) -> String {
    format!("k{b:013}")
}

/// How many keys the 4 KB space has for a run over `keys` keys.
pub fn large_keys(keys: usize) -> usize {
    keys.min(LARGE_KEYS)
}

/// A value of `len` bytes, printable (some peers store text), different
/// for each `seed`.
pub fn value(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + ((i + seed) % 26) as u8).collect()
}

/// A small, fast generator: each task draws its own keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for task `task`.
    pub fn new(task: usize) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (task as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) | 1)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_16_bytes_and_a_prefix_matches_exactly_100() {
        assert_eq!(small_key(0).len(), 16);
        assert_eq!(large_key(123_456).len(), 16);
        let prefix = block_prefix(7);
        let matching = (0..10_000)
            .map(small_key)
            .filter(|k| k.starts_with(&prefix))
            .count();
        assert_eq!(matching, MATCHES);
        assert!(small_key(700).starts_with(&prefix) && small_key(799).starts_with(&prefix));
    }

    #[test]
    fn names() {
        let names: Vec<String> = Workload::ALL.iter().map(|w| w.name()).collect();
        assert_eq!(
            names,
            [
                "get_100B",
                "get_4KB",
                "mix_90_10",
                "list_100",
                "count_100",
                "set_100B",
                "set_4KB"
            ]
        );
    }
}
