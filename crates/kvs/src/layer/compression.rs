//! The compression layer: values from a size up are stored as zstd or LZ4
//! frames behind a one-byte header; smaller ones, and every value written
//! without the layer, read back as they are.
//!
//! # The stored form
//!
//! A compressed value is the byte [`HEADER`] followed by a zstd frame or
//! an LZ4 frame, each starting with its own magic number (`28 B5 2F FD`,
//! `04 22 4D 18`) and carrying a checksum of its content. Every other
//! value is stored verbatim. On reading, a value that starts with the
//! header and a frame magic is a frame, and must decompress (a damaged
//! frame is an error, never garbage); anything else is plain. So a value
//! written without the layer reads back unchanged unless it begins with
//! those five bytes, and the layer never writes a plain value that begins
//! with [`HEADER`]: such a value is stored compressed, whatever its size.

use crate::{Bytes, Error, Result};
use std::cell::RefCell;
use std::io::Read;

/// The first byte of every value this layer compresses.
pub const HEADER: u8 = 0xF5;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

/// The largest value a frame may decompress to: a damaged or hostile
/// frame cannot make a read allocate more.
pub const MAX_DECOMPRESSED: usize = 1 << 30;

/// The compressor the layer writes with; it reads both.
pub use super::CompressionAlgorithm as Algorithm;

/// Compresses values of `threshold` bytes and more (default 1 KiB), when
/// that makes them smaller. See the [module docs](self) for the stored
/// form, which `get`, `get_many` and `entries_page` undo.
///
/// `compare_and_swap` compares the expected value with the stored one
/// decompressed, then swaps against the stored bytes, so it stays atomic.
/// `increment` works on plain decimal values, which are far below any
/// sensible threshold, and passes through. Keys, TTLs and listing pass
/// through; documents are not compressed. In a configuration file:
/// `layers: [{ compression: { algorithm: zstd, threshold: 1024, level: 3 } }]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::layer::{Compression, LayerExt};
///
/// let bare = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?;
/// let store = bare.clone().layer(Compression::zstd());
/// let text = "a conversation that repeats itself, ".repeat(100);
/// store.set("chat", text.as_bytes(), None).await?;
/// assert_eq!(store.get("chat").await?, text.as_bytes());
/// assert!(bare.get("chat").await?.len() < text.len() / 10);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    algorithm: Algorithm,
    threshold: usize,
    level: i32,
}

impl Compression {
    /// zstd at level 3 from 1 KiB up.
    pub fn zstd() -> Compression {
        Compression {
            algorithm: Algorithm::Zstd,
            threshold: 1024,
            level: 3,
        }
    }

    /// LZ4 from 1 KiB up.
    pub fn lz4() -> Compression {
        Compression {
            algorithm: Algorithm::Lz4,
            ..Compression::zstd()
        }
    }

    /// `algorithm` from `threshold` bytes up, at zstd `level` (1–22; LZ4
    /// has no levels).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zstd level outside 1–22.
    pub fn new(algorithm: Algorithm, threshold: usize, level: i32) -> Result<Compression> {
        if !(1..=22).contains(&level) {
            return Err(Error::config(format!(
                "compression: level {level} is outside zstd's 1 to 22"
            )));
        }
        Ok(Compression {
            algorithm,
            threshold,
            level,
        })
    }

    /// What to store for `value`.
    fn encode<'v>(&self, key: &str, value: &'v [u8]) -> Result<std::borrow::Cow<'v, [u8]>> {
        let must = value.first() == Some(&HEADER);
        if value.len() < self.threshold && !must {
            return Ok(value.into());
        }
        let mut out = vec![HEADER];
        let written = match self.algorithm {
            Algorithm::Zstd => zstd_encode(value, self.level, &mut out),
            Algorithm::Lz4 => lz4_encode(value, &mut out),
        };
        written.map_err(|e| {
            Error::backend(
                "compression",
                format!("compressing the value of {key:?}"),
                e,
            )
        })?;
        Ok(if out.len() < value.len() || must {
            out.into()
        } else {
            value.into()
        })
    }
}

thread_local! {
    /// One zstd compression context per thread, kept between calls: making
    /// one costs more than compressing a 4 KB value (it measured 0.59× of
    /// an uncompressed SQLite set with a context per call).
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    /// The same for decompression.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_encode(value: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<()> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| std::io::Error::other("the zstd context is in use"))?;
        let compressor = match &mut *slot {
            Some((current, compressor)) if *current == level => compressor,
            slot => {
                let mut compressor = zstd::bulk::Compressor::new(level)?;
                compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                &mut slot.insert((level, compressor)).1
            }
        };
        // The frame records its content size (a one-shot compression knows
        // it), which decompression uses to allocate once.
        let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(value.len()));
        compressor.compress_to_buffer(value, &mut frame)?;
        out.extend_from_slice(&frame);
        Ok(())
    })
}

/// Decompresses a zstd `frame` into `out`: in one call into a buffer of
/// the recorded size when the frame records one within the bound, else as
/// a bounded stream.
fn zstd_decode(frame: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let size = zstd::bulk::Decompressor::upper_bound(frame).filter(|&n| n <= MAX_DECOMPRESSED);
    let Some(size) = size else {
        return zstd::stream::Decoder::new(frame).and_then(|d| bounded_read(d, out));
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| std::io::Error::other("the zstd context is in use"))?;
        let decompressor = match &mut *slot {
            Some(decompressor) => decompressor,
            slot => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        out.reserve_exact(size);
        decompressor.decompress_to_buffer(frame, out)?;
        Ok(())
    })
}

fn lz4_encode(value: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let info = lz4_flex::frame::FrameInfo::new()
        .content_checksum(true)
        .content_size(Some(value.len() as u64));
    let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
    std::io::Write::write_all(&mut encoder, value)?;
    encoder.finish().map(drop).map_err(std::io::Error::other)
}

/// The value `stored` holds: decompressed if it is a frame of this layer.
pub fn decode(key: &str, stored: Bytes) -> Result<Bytes> {
    if stored.len() < 5 || stored[0] != HEADER {
        return Ok(stored);
    }
    let frame = &stored[1..];
    let mut out = Vec::new();
    let read = if frame[..4] == ZSTD_MAGIC {
        zstd_decode(frame, &mut out)
    } else if frame[..4] == LZ4_MAGIC {
        bounded_read(lz4_flex::frame::FrameDecoder::new(frame), &mut out)
    } else {
        return Ok(stored);
    };
    read.map_err(|e| {
        Error::backend(
            "compression",
            format!("decompressing the value of {key:?} (damaged frame?)"),
            e,
        )
    })?;
    Ok(out.into())
}

fn bounded_read(reader: impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    reader.take(MAX_DECOMPRESSED as u64 + 1).read_to_end(out)?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(std::io::Error::other(format!(
            "it decompresses to more than {MAX_DECOMPRESSED} bytes"
        )));
    }
    Ok(())
}

impl super::ValueTransform for Compression {
    fn encode<'v>(&self, key: &str, value: &'v [u8]) -> Result<std::borrow::Cow<'v, [u8]>> {
        Compression::encode(self, key, value)
    }

    fn decode(&self, key: &str, stored: Bytes) -> Result<Bytes> {
        decode(key, stored)
    }

    /// A counter is a few digits, far below any threshold worth having,
    /// and stays plain (a threshold of 0 still leaves it plain: the frame
    /// would be larger).
    fn keeps_counters(&self) -> bool {
        true
    }
}

super::layer_wraps_with!(Compression, |layer, inner| CompressionStore::new(
    inner, *layer
));

/// A store behind the [`Compression`] layer.
pub type CompressionStore<S> = super::TransformStore<S, Compression>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any value, under either algorithm and any threshold, reads back
        /// as written; and no stored bytes make decoding panic.
        #[test]
        fn every_value_round_trips_and_no_bytes_panic(
            value in proptest::collection::vec(any::<u8>(), 0..3000),
            repeat in 1usize..4,
            threshold in 0usize..2048,
            lz4 in any::<bool>(),
        ) {
            let value = value.repeat(repeat);
            let algorithm = if lz4 { Algorithm::Lz4 } else { Algorithm::Zstd };
            let layer = Compression::new(algorithm, threshold, 3).unwrap();
            let stored = layer.encode("k", &value).unwrap().into_owned();
            prop_assert_eq!(&decode("k", stored.clone().into()).unwrap()[..], &value[..]);
            let mut damaged = stored;
            if let Some(last) = damaged.last_mut() {
                *last ^= 0x55;
            }
            let _ = decode("k", damaged.into());
        }
    }

    #[test]
    fn a_damaged_frame_is_an_error_naming_the_key() {
        for layer in [Compression::zstd(), Compression::lz4()] {
            let value = b"abcdefgh".repeat(500);
            let mut stored = layer.encode("chat:1", &value).unwrap().into_owned();
            let middle = stored.len() / 2;
            stored[middle] ^= 0xFF;
            let err = decode("chat:1", stored.into()).unwrap_err().to_string();
            assert!(
                err.contains("\"chat:1\"") && err.contains("damaged"),
                "{err}"
            );
        }
    }

    #[test]
    fn plain_values_starting_with_the_header_are_stored_compressed() {
        let layer = Compression::zstd();
        let value = [HEADER, 0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3];
        let stored = layer.encode("k", &value).unwrap();
        assert_ne!(&stored[..], &value[..]);
        assert_eq!(
            &decode("k", stored.into_owned().into()).unwrap()[..],
            &value[..]
        );
        // A value written without the layer that only starts with the
        // header byte reads back unchanged.
        let foreign = Bytes::from_static(&[HEADER, b'x', b'y', b'z', b'w', b'v']);
        assert_eq!(decode("k", foreign.clone()).unwrap(), foreign);
    }
}
