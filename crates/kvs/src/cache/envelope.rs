//! How the cache stores a value: the payload behind a small header that
//! says when it expires, which tag versions it was written under, and
//! whether it is a cached failure.
//!
//! ```text
//! 0xCA  version(1)  flags(1)  deadline(u64 BE, ms since the epoch; 0 = never)
//! tags(u16 BE)  { length(u16 BE) tag-bytes  version(i64 BE) } * tags
//! payload
//! ```
//!
//! The deadline is kept in the value so that refresh-ahead can tell how
//! long an entry has left without asking the store a second time. A
//! failure (flag `NEGATIVE`) carries the loader's message as its payload.
//!
//! Decoding never panics and never reads past the input: every length is
//! checked against what is left (a property test below feeds it junk).

use bytes::Bytes;

/// The first byte of every cache entry.
const MAGIC: u8 = 0xCA;
/// The layout above.
const VERSION: u8 = 1;
/// The entry is a cached loader failure; the payload is its message.
const NEGATIVE: u8 = 1;
/// magic, version, flags, deadline, tag count.
const FIXED: usize = 1 + 1 + 1 + 8 + 2;

/// The longest tag, in bytes (its length is a `u16` in the header, and
/// its version key must stay a valid key).
pub(crate) const MAX_TAG_LEN: usize = 256;

/// A decoded entry. `payload` shares the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// When the entry expires, in ms since the epoch; `None`: never.
    pub deadline_ms: Option<u64>,
    /// Each tag with the version it had when the value was written.
    pub tags: Vec<(String, i64)>,
    /// A cached failure rather than a value.
    pub negative: bool,
    /// The value, or the failure's message.
    pub payload: Bytes,
}

/// `payload` wrapped in an entry header.
pub(crate) fn encode(
    deadline_ms: Option<u64>,
    tags: &[(String, i64)],
    negative: bool,
    payload: &[u8],
) -> Vec<u8> {
    let tag_bytes: usize = tags.iter().map(|(tag, _)| 2 + tag.len() + 8).sum();
    let mut out = Vec::with_capacity(FIXED + tag_bytes + payload.len());
    out.push(MAGIC);
    out.push(VERSION);
    out.push(if negative { NEGATIVE } else { 0 });
    out.extend_from_slice(&deadline_ms.unwrap_or(0).to_be_bytes());
    // Callers check tags against MAX_TAG_LEN and their count against u16.
    out.extend_from_slice(&(tags.len() as u16).to_be_bytes());
    for (tag, version) in tags {
        out.extend_from_slice(&(tag.len() as u16).to_be_bytes());
        out.extend_from_slice(tag.as_bytes());
        out.extend_from_slice(&version.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// The entry `bytes` hold, or why they are not one.
pub(crate) fn decode(bytes: &Bytes) -> Result<Envelope, &'static str> {
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], &'static str> {
        let end = at + n;
        let slice = bytes.get(at..end).ok_or("it is cut short")?;
        at = end;
        Ok(slice)
    };
    if take(1)? != [MAGIC] {
        return Err("it was not written by kvs::cache");
    }
    if take(1)? != [VERSION] {
        return Err("it has an unknown cache entry version");
    }
    let flags = take(1)?[0];
    if flags & !NEGATIVE != 0 {
        return Err("it has unknown flags");
    }
    let deadline = u64::from_be_bytes(array(take(8)?)?);
    let count = u16::from_be_bytes(array(take(2)?)?);
    let mut tags = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let len = u16::from_be_bytes(array(take(2)?)?);
        let tag = std::str::from_utf8(take(usize::from(len))?).map_err(|_| "a tag is not UTF-8")?;
        let tag = tag.to_owned();
        let version = i64::from_be_bytes(array(take(8)?)?);
        tags.push((tag, version));
    }
    Ok(Envelope {
        deadline_ms: (deadline != 0).then_some(deadline),
        tags,
        negative: flags & NEGATIVE != 0,
        payload: bytes.slice(at..),
    })
}

fn array<const N: usize>(slice: &[u8]) -> Result<[u8; N], &'static str> {
    slice.try_into().map_err(|_| "it is cut short")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag() -> impl Strategy<Value = (String, i64)> {
        ("[a-z:0-9é]{1,20}", any::<i64>())
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(
            deadline in proptest::option::of(1..u64::MAX),
            tags in prop::collection::vec(tag(), 0..5),
            negative: bool,
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = Bytes::from(encode(deadline, &tags, negative, &payload));
            let entry = decode(&bytes).expect("decodes");
            prop_assert_eq!(entry, Envelope { deadline_ms: deadline, tags, negative, payload: Bytes::from(payload) });
        }

        #[test]
        fn junk_never_panics(junk in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&Bytes::from(junk));
        }

        #[test]
        fn a_cut_entry_is_refused(
            tags in prop::collection::vec(tag(), 1..4),
            cut in 0usize..40,
        ) {
            let bytes = encode(Some(7), &tags, false, b"");
            let cut = cut.min(bytes.len() - 1);
            // Cut inside the header: never a wrong entry, always an error.
            prop_assert!(decode(&Bytes::copy_from_slice(&bytes[..cut])).is_err());
        }
    }

    #[test]
    fn plain_values_are_not_entries() {
        assert_eq!(
            decode(&Bytes::from_static(b"{\"user\":1}")),
            Err("it was not written by kvs::cache")
        );
        assert_eq!(decode(&Bytes::new()), Err("it is cut short"));
    }
}
