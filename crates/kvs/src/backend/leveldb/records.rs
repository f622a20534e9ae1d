//! How a key, its value and its deadline are laid out in the database:
//!
//! ```text
//! "d" key                  -> expires_at (u64, big-endian ms; u64::MAX = never) ++ value
//! "x" expires_at key       -> ""   one per key with a TTL: the expiry index
//! ```

/// Record keys start with this byte.
pub(super) const DATA: u8 = b'd';
/// Expiry-index keys start with this byte.
pub(super) const EXPIRY: u8 = b'x';
/// Bytes of deadline in front of every value.
pub(super) const HEADER: usize = 8;

/// The database key of `key`'s record.
pub(super) fn data_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(DATA);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The expiry-index key of `key` expiring at `expires_at`.
pub(super) fn expiry_key(expires_at: u64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + HEADER + key.len());
    k.push(EXPIRY);
    k.extend_from_slice(&expires_at.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// A record: the deadline, then the value.
pub(super) fn record(value: &[u8], expires_at: u64) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + value.len());
    record.extend_from_slice(&expires_at.to_be_bytes());
    record.extend_from_slice(value);
    record
}

/// A record's deadline, or `None` for a record too short to have one.
pub(super) fn record_deadline(record: &[u8]) -> Option<u64> {
    let header: [u8; HEADER] = record.get(..HEADER)?.try_into().ok()?;
    Some(u64::from_be_bytes(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_its_deadline_and_value() {
        let r = record(b"ada", 42);
        assert_eq!(record_deadline(&r), Some(42));
        assert_eq!(&r[HEADER..], b"ada");
        assert_eq!(record_deadline(b"short"), None);
    }

    #[test]
    fn the_expiry_index_sorts_by_deadline_first() {
        assert!(expiry_key(1, "z") < expiry_key(2, "a"));
        assert!(expiry_key(256, "a") > expiry_key(255, "z"));
        assert!(data_key("a") < data_key("b"));
    }
}
