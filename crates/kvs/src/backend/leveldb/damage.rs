//! Damage in a database's files, found before rusty-leveldb reads them.
//!
//! rusty-leveldb 4.0.2 does not report damage; it drops what it cannot
//! read:
//!
//! - **Logs.** Recovery stops at the first record whose checksum fails and
//!   drops it and everything after it without a word. That is right for a
//!   torn tail (a power cut, a partial write or a full disk leaves the last
//!   record unfinished; with sync writes it was never acknowledged), and
//!   wrong for damage in the middle (a flipped byte, an overwritten block):
//!   the records after it were whole, and dropping them loses acknowledged
//!   writes.
//! - **Tables.** A block that fails its checksum reads as missing keys:
//!   `Version::get` keeps only `Ok(Some(..))` answers of a table
//!   (`version.rs`, `if let Ok(Some((k, v))) = ...get(..)`), `DB::get` turns
//!   every error into `None`, and table iterators skip to the next block
//!   ("try next block, this might be corruption"), so a compaction writes
//!   the survivors out and the keys are gone for good.
//!
//! So every open checks first. Logs: they are append-only and kvs never
//! appends after a failed write (the database is reopened with a fresh
//! log), so only a log's tail can be torn; a bad record followed by a good
//! one is damage and refuses the open, a bad record with nothing good after
//! it is a torn tail, replayed up to the tear (with a warning) as LevelDB
//! always has. Tables: every block of every table (data, filter, index,
//! metaindex) is read and its checksum verified; one that fails refuses the
//! open. This reads the whole database once per open (at disk speed; tables
//! never change once written). Damage that appears while the database is
//! open is still read as missing keys: that is rusty-leveldb's, and needs a
//! fix there (or another engine) to report.

use crate::{Error, Result};
use std::path::Path;

// ------------------------------------------------------------------ logs
//
// The format (LevelDB's `log_format.md`): the file is a run of 32 KiB
// blocks; a record is `checksum: u32 LE, length: u16 LE, type: u8, data`,
// never crosses a block (a long one is split into first/middle/last
// fragments), and a block's last < 7 bytes are zero padding. The checksum
// is the masked CRC-32C of the type byte and the data.

const BLOCK: usize = 32 * 1024;
const HEADER: usize = 7;
/// Record types 1..=4: full, first, middle, last.
const TYPES: std::ops::RangeInclusive<u8> = 1..=4;

/// What a scan of one log found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Log {
    /// Every record is whole.
    Whole,
    /// Whole up to `at`; what follows is an unfinished or bad record with
    /// no good one after it.
    TornAt { at: usize },
    /// The record at `at` is bad, and a good one follows at `next`, or
    /// (in a manifest) it is whole, not cut off by the end of the file.
    DamagedAt { at: usize, next: Option<usize> },
}

/// Which kind of file a scan reads; they differ in what a torn tail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A write-ahead log: its last record may have been written in any
    /// order and never synced, so a bad one with nothing good after it is
    /// a torn tail, whatever its bytes.
    Log,
    /// The manifest (the list of tables, in the log's format): dropping its
    /// last edit forgets whole tables, so only a record the end of the file
    /// cuts off is a torn tail; a whole one that fails its checksum is
    /// damage.
    Manifest,
}

/// Checks the logs and tables in `dir` before the database is opened:
/// damage is an error naming the file and the byte; a torn log tail is
/// logged. A directory that does not exist yet has nothing to check.
pub(super) fn check(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("MANIFEST-") {
            check_log(dir, &path, Kind::Manifest)?;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => check_log(dir, &path, Kind::Log)?,
            Some("ldb" | "sst") => check_table(dir, &path)?,
            _ => {}
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::backend(super::BACKEND, format!("reading {}", path.display()), e))
}

/// The error of damage found in `file` of the database in `dir`.
fn damaged(dir: &Path, file: &Path, what: String) -> Error {
    Error::backend(
        super::BACKEND,
        format!("opening {}", dir.display()),
        format!(
            "{} is damaged: {what}; opening would drop acknowledged writes without a word. Restore the directory from a backup, or salvage it with LevelDB's RepairDB",
            file.display()
        ),
    )
}

fn check_log(dir: &Path, path: &Path, kind: Kind) -> Result<()> {
    let data = read(path)?;
    match scan(&data, kind) {
        Log::Whole => Ok(()),
        Log::TornAt { at } => {
            tracing::warn!(
                log = %path.display(),
                at,
                dropped = data.len() - at,
                "kvs leveldb: the log ends in an unfinished record (a crash or a full disk); replaying up to it"
            );
            Ok(())
        }
        Log::DamagedAt { at, next } => Err(damaged(
            dir,
            path,
            match next {
                Some(next) => format!(
                    "the record at byte {at} fails its checksum and a good one follows at byte {next}"
                ),
                None => format!("the record at byte {at} fails its checksum"),
            },
        )),
    }
}

/// Walks the records of one log or manifest.
pub(super) fn scan(data: &[u8], kind: Kind) -> Log {
    let mut pos = 0;
    while pos < data.len() {
        let left_in_block = BLOCK - pos % BLOCK;
        if left_in_block < HEADER {
            // Block padding; a torn write may leave it short or non-zero,
            // which the next block's records would show.
            pos += left_in_block;
            continue;
        }
        match record_at(data, pos) {
            Some(end) => pos = end,
            None => {
                let next = next_good(data, pos);
                return if next.is_some() || (kind == Kind::Manifest && !cut_off(data, pos)) {
                    Log::DamagedAt { at: pos, next }
                } else {
                    Log::TornAt { at: pos }
                };
            }
        }
    }
    Log::Whole
}

/// The end of the whole, good record at `pos`, or `None`.
fn record_at(data: &[u8], pos: usize) -> Option<usize> {
    let header = data.get(pos..pos + HEADER)?;
    let checksum = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
    let kind = header[6];
    let end = pos + HEADER + length;
    let block_end = (pos / BLOCK + 1) * BLOCK;
    if !TYPES.contains(&kind) || end > block_end {
        return None;
    }
    let body = data.get(pos + HEADER..end)?;
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, body);
    (unmask(checksum) == crc).then_some(end)
}

/// Whether the end of the file cuts off the record at `pos`.
fn cut_off(data: &[u8], pos: usize) -> bool {
    match data.get(pos + 4..pos + 6) {
        Some(length) => {
            pos + HEADER + usize::from(u16::from_le_bytes([length[0], length[1]])) > data.len()
        }
        None => true,
    }
}

/// LevelDB stores checksums masked, so that a checksum of data that holds
/// checksums does not look like one.
fn unmask(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(0xa282_ead8);
    rot.rotate_left(15)
}

/// Where a good record starts after the bad one at `bad`, if anywhere:
/// at every offset of the rest of its block (the bad record's own length
/// may be what is damaged), then at every later block's start, where a
/// record always begins.
fn next_good(data: &[u8], bad: usize) -> Option<usize> {
    let block_end = ((bad / BLOCK + 1) * BLOCK).min(data.len());
    (bad + 1..block_end)
        .chain((block_end..data.len()).step_by(BLOCK))
        .find(|&at| record_at(data, at).is_some_and(|end| end > at + HEADER))
}

// ---------------------------------------------------------------- tables
//
// The format (LevelDB's `table_format.md`): blocks, each followed by a
// trailer of `compression: u8, checksum: u32 LE` (the masked CRC-32C of the
// block as stored and of the compression byte), then a 48-byte footer: the
// metaindex block's handle and the index block's handle (two varints each:
// offset, size), zero padding, and an 8-byte magic number. The index maps
// each data block's last key to its handle, the metaindex the filter
// block's name to its handle; so every block is reached from the footer.

const FOOTER: usize = 48;
const MAGIC: [u8; 8] = [0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb];
const TRAILER: usize = 5;

fn check_table(dir: &Path, path: &Path) -> Result<()> {
    let data = read(path)?;
    verify_table(&data).map_err(|what| damaged(dir, path, what))
}

/// A block's place in a table: offset and size, without the trailer.
type Handle = (usize, usize);

/// Checks every block of the table `data`; `Err` says what is wrong.
fn verify_table(data: &[u8]) -> std::result::Result<(), String> {
    let footer_at = data
        .len()
        .checked_sub(FOOTER)
        .ok_or_else(|| format!("at {} bytes it is too short for a table", data.len()))?;
    let footer = &data[footer_at..];
    if footer[FOOTER - MAGIC.len()..] != MAGIC {
        return Err("its footer lacks the table magic number".into());
    }
    let (metaindex, used) = handle(footer).ok_or("its footer holds no metaindex handle")?;
    let (index, _) = handle(&footer[used..]).ok_or("its footer holds no index handle")?;
    for (name, top) in [("metaindex", metaindex), ("index", index)] {
        let at = |e: String| format!("its {name} block at byte {}: {e}", top.0);
        let (stored, compression) = verified(data, top, footer_at).map_err(at)?;
        let contents = decompress(stored, compression).map_err(at)?;
        for value in values(&contents).map_err(at)? {
            let (inner, _) = handle(value)
                .ok_or_else(|| format!("its {name} block holds a bad block handle"))?;
            verified(data, inner, footer_at)
                .map_err(|e| format!("the block at byte {} (in its {name} block): {e}", inner.0))?;
        }
    }
    Ok(())
}

/// The block at `at`, as stored, and its compression byte, once its
/// checksum has been checked.
fn verified(data: &[u8], at: Handle, limit: usize) -> std::result::Result<(&[u8], u8), String> {
    let (offset, size) = at;
    let end = offset
        .checked_add(size)
        .and_then(|e| e.checked_add(TRAILER))
        .filter(|&e| e <= limit)
        .ok_or_else(|| format!("its {size} bytes run past the last block"))?;
    let stored = &data[offset..offset + size];
    let trailer = &data[offset + size..end];
    let checksum = u32::from_le_bytes([trailer[1], trailer[2], trailer[3], trailer[4]]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(stored), &trailer[..1]);
    if unmask(checksum) != crc {
        return Err("it fails its checksum".into());
    }
    Ok((stored, trailer[0]))
}

fn decompress(stored: &[u8], compression: u8) -> std::result::Result<Vec<u8>, String> {
    use rusty_leveldb::compressor::{Compressor, SnappyCompressor};
    match compression {
        0 => Ok(stored.to_vec()),
        1 => SnappyCompressor
            .decode(stored.to_vec())
            .map_err(|e| format!("its Snappy data does not decompress: {e}")),
        other => Err(format!("its compression {other} is unknown")),
    }
}

/// The values of a block's entries: `shared: varint, unshared: varint,
/// value_len: varint, key delta, value`, then `restarts: [u32]` and their
/// count.
fn values(block: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    let bad = || "its entries are unreadable".to_owned();
    let count_at = block.len().checked_sub(4).ok_or_else(bad)?;
    let restarts = u32::from_le_bytes(block[count_at..].try_into().map_err(|_| bad())?) as usize;
    let end = restarts
        .checked_mul(4)
        .and_then(|r| count_at.checked_sub(r))
        .ok_or_else(bad)?;
    let mut values = Vec::new();
    let mut rest = &block[..end];
    while !rest.is_empty() {
        let (_shared, n) = varint(rest).ok_or_else(bad)?;
        rest = &rest[n..];
        let (unshared, n) = varint(rest).ok_or_else(bad)?;
        rest = &rest[n..];
        let (value_len, n) = varint(rest).ok_or_else(bad)?;
        rest = &rest[n..];
        let start = usize::try_from(unshared).map_err(|_| bad())?;
        let stop = usize::try_from(value_len)
            .ok()
            .and_then(|v| start.checked_add(v))
            .filter(|&s| s <= rest.len())
            .ok_or_else(bad)?;
        values.push(&rest[start..stop]);
        rest = &rest[stop..];
    }
    Ok(values)
}

/// A block handle: two varints, and how many bytes they took.
fn handle(bytes: &[u8]) -> Option<(Handle, usize)> {
    let (offset, a) = varint(bytes)?;
    let (size, b) = varint(bytes.get(a..)?)?;
    Some((
        (usize::try_from(offset).ok()?, usize::try_from(size).ok()?),
        a + b,
    ))
}

/// A little-endian base-128 varint, and how many bytes it took.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(crc: u32) -> u32 {
        crc.rotate_right(15).wrapping_add(0xa282_ead8)
    }

    /// A log of whole records holding `bodies`, each one fragment.
    fn log(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for body in bodies {
            let crc = crc32c::crc32c_append(crc32c::crc32c(&[1]), body);
            out.extend_from_slice(&mask(crc).to_le_bytes());
            out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_le_bytes());
            out.push(1);
            out.extend_from_slice(body);
        }
        out
    }

    #[test]
    fn a_log_written_by_rusty_leveldb_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut db =
                rusty_leveldb::DB::open(dir.path(), rusty_leveldb::Options::default()).unwrap();
            for i in 0..100u32 {
                // Values that cross blocks: first/middle/last fragments.
                db.put(&i.to_be_bytes(), &vec![i as u8; 3000 + i as usize * 50])
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let mut logs = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let data = std::fs::read(&path).unwrap();
                assert!(data.len() > 2 * BLOCK, "{} bytes", data.len());
                assert_eq!(scan(&data, Kind::Log), Log::Whole);
                logs += 1;
            }
        }
        assert!(logs > 0);
    }

    #[test]
    fn an_unfinished_last_record_is_a_torn_tail() {
        let whole = log(&[b"one", b"two", b"three"]);
        let last = whole.len() - (HEADER + 5);
        for cut in last + 1..whole.len() {
            for kind in [Kind::Log, Kind::Manifest] {
                assert_eq!(
                    scan(&whole[..cut], kind),
                    Log::TornAt { at: last },
                    "cut {cut}"
                );
            }
        }
        assert_eq!(scan(&whole[..last], Kind::Log), Log::Whole);
    }

    #[test]
    fn a_bad_last_record_is_a_torn_tail() {
        let mut data = log(&[b"one", b"two"]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        assert_eq!(scan(&data, Kind::Log), Log::TornAt { at: HEADER + 3 });
        // Zeros where the last record should be: a tail the disk never got.
        let mut zeros = log(&[b"one"]);
        zeros.resize(zeros.len() + 40, 0);
        assert_eq!(scan(&zeros, Kind::Log), Log::TornAt { at: HEADER + 3 });
        // In a manifest, a whole last record that fails is damage.
        assert_eq!(
            scan(&data, Kind::Manifest),
            Log::DamagedAt {
                at: HEADER + 3,
                next: None
            }
        );
    }

    #[test]
    fn a_bad_record_before_a_good_one_is_damage() {
        let whole = log(&[b"first record", b"second record", b"third"]);
        let second = HEADER + 12;
        // Every byte of the second record, its length field included.
        for at in second..second + HEADER + 13 {
            let mut data = whole.clone();
            data[at] ^= 0x5a;
            assert!(
                matches!(scan(&data, Kind::Log), Log::DamagedAt { at: bad, next: Some(_) } if bad == second),
                "flip at {at}: {:?}",
                scan(&data, Kind::Log)
            );
        }
    }

    #[test]
    fn a_table_written_by_rusty_leveldb_verifies_and_any_flipped_bit_is_found() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut db =
                rusty_leveldb::DB::open(dir.path(), rusty_leveldb::Options::default()).unwrap();
            for i in 0..300u32 {
                db.put(format!("key{i:04}").as_bytes(), &[i as u8; 100])
                    .unwrap();
            }
            db.compact_range(b"key", b"kez").unwrap();
        }
        let table = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "ldb"))
            .expect("a table");
        let data = std::fs::read(&table).unwrap();
        assert_eq!(verify_table(&data), Ok(()));
        // Every byte but the footer's zero padding, which nothing reads.
        for at in 0..data.len() {
            let mut damaged = data.clone();
            damaged[at] ^= 1 << (at % 8);
            let padding = at >= data.len() - FOOTER
                && at < data.len() - MAGIC.len()
                && handle(&data[data.len() - FOOTER..]).is_some_and(|(_, a)| {
                    handle(&data[data.len() - FOOTER + a..])
                        .is_some_and(|(_, b)| at >= data.len() - FOOTER + a + b)
                });
            if !padding {
                assert!(
                    verify_table(&damaged).is_err(),
                    "a flip at byte {at} went unseen"
                );
            }
        }
    }
}
