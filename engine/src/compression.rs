//! Decompression of a batch's records section: on produce, to check a compressed batch's
//! records as Kafka does, and where a feature must look inside stored batches
//! (offset-for-timestamp). Batches are always stored as they came.
//! Output is bounded by `limit_bytes` so a hostile batch (a decompression bomb) cannot balloon
//! memory: reading stops one byte past the limit.

use std::cell::{Cell, RefCell};
use std::io::Read;

use crate::error::LogError;
use riptide_format::codec;

/// Java clients frame snappy with xerial's header: magic, then (u32 length, block)*.
const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

const BAD: LogError = LogError::CorruptMessage("compressed records do not decompress");
const TOO_BIG: LogError = LogError::InvalidRecord("decompressed records exceed 64 MiB");

/// The most bytes a batch's records section may decompress to. Kafka sets no such bound (its
/// records stream one by one); ours are walked as one slice, so this caps a bomb's memory and
/// CPU. A producer's batch is far below it: `max.message.bytes` (1 MiB by default) of records
/// would need a ratio above 64 to reach it.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// A shard's decompression buffer is kept for the next batch up to this capacity, and given
/// back above it (a rare huge batch must not pin its memory).
const SCRATCH_KEPT_BYTES_MAX: usize = 4 << 20;

thread_local! {
    /// One buffer per thread (a shard validates one batch at a time), so steady compressed
    /// produce reuses it instead of allocating its output per batch. Taken out while in use,
    /// so a nested use finds it empty rather than borrowed.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// A zstd decompression context per thread: creating one per batch costs an allocation of
    /// about 100 KiB and its setup. Reset at each use (`Decoder::with_context`).
    static ZSTD_CONTEXT: RefCell<zstd::zstd_safe::DCtx<'static>> = RefCell::new(zstd::zstd_safe::DCtx::create());
}

/// Decompresses `input` (a batch's records section) encoded with `codec_id`.
pub fn decompress(codec_id: u8, input: &[u8], limit_bytes: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    decompress_into(codec_id, input, limit_bytes, &mut out)?;
    Ok(out)
}

/// Decompresses `input` into this thread's scratch buffer and hands the records to `f`.
pub fn with_decompressed<R>(
    codec_id: u8,
    input: &[u8],
    limit_bytes: usize,
    f: impl FnOnce(&[u8]) -> Result<R, LogError>,
) -> Result<R, LogError> {
    let mut out = SCRATCH.take();
    out.clear();
    let result = decompress_into(codec_id, input, limit_bytes, &mut out).and_then(|()| f(&out));
    if out.capacity() <= SCRATCH_KEPT_BYTES_MAX {
        out.clear();
        SCRATCH.set(out);
    }
    result
}

/// Decompresses `input` into `out` (cleared first), at most `limit_bytes` of it.
pub fn decompress_into(
    codec_id: u8,
    input: &[u8],
    limit_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), LogError> {
    out.clear();
    match codec_id {
        codec::NONE if input.len() > limit_bytes => Err(TOO_BIG),
        codec::NONE => {
            out.extend_from_slice(input);
            Ok(())
        }
        // The input is a slice already: the `bufread` decoders read it without a copy buffer.
        codec::GZIP => read_bounded(flate2::bufread::GzDecoder::new(input), limit_bytes, out),
        codec::SNAPPY => snappy(input, limit_bytes, out),
        codec::LZ4 => read_bounded(lz4_flex::frame::FrameDecoder::new(input), limit_bytes, out),
        codec::ZSTD => zstd(input, limit_bytes, out),
        _ => Err(LogError::InvalidRecord("unknown compression codec")),
    }
}

/// Compresses `input` (a batch's records section) with `codec_id`, as the Java producer frames
/// it (snappy in xerial's framing), so that every client reads it back. The cleaner uses it to
/// write what it kept of a compressed batch in the batch's own codec.
pub fn compress(codec_id: u8, input: &[u8]) -> Result<Vec<u8>, LogError> {
    compress_at(codec_id, None, input)
}

/// `compress` at a level (`compression.gzip.level` 1–9, `compression.zstd.level`; lz4 has one
/// speed here), or the codec's default level.
pub fn compress_at(codec_id: u8, level: Option<i32>, input: &[u8]) -> Result<Vec<u8>, LogError> {
    use std::io::Write;
    let failed = |_| LogError::Storage("compressing records failed".into());
    match codec_id {
        codec::NONE => Ok(input.to_vec()),
        codec::GZIP => {
            let level = level
                .map_or(flate2::Compression::default(), |l| flate2::Compression::new(l.clamp(1, 9) as u32));
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(input).map_err(failed)?;
            e.finish().map_err(failed)
        }
        codec::SNAPPY => {
            // xerial: magic, version 1, compatible version 1, then (u32 length, block)*.
            const BLOCK: usize = 32 << 10;
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in input.chunks(BLOCK) {
                let block = encoder.compress_vec(chunk).map_err(|_| LogError::Storage("snappy".into()))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        codec::LZ4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(input).map_err(failed)?;
            e.finish().map_err(|_| LogError::Storage("lz4".into()))
        }
        codec::ZSTD => zstd::encode_all(input, level.unwrap_or(3)).map_err(failed),
        _ => Err(LogError::InvalidRecord("unknown compression codec")),
    }
}

fn zstd(input: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), LogError> {
    ZSTD_CONTEXT.with(|context| match context.try_borrow_mut() {
        Ok(mut context) => {
            read_bounded(zstd::stream::read::Decoder::with_context(input, &mut context), limit_bytes, out)
        }
        // Only if a decompression ever ran inside another on this thread: a context of its own.
        Err(_) => {
            let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|_| BAD)?;
            read_bounded(decoder, limit_bytes, out)
        }
    })
}

fn read_bounded(r: impl Read, limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), LogError> {
    let mut limited = r.take(limit_bytes as u64 + 1);
    limited.read_to_end(out).map_err(|_| BAD)?;
    if out.len() > limit_bytes {
        return Err(TOO_BIG);
    }
    Ok(())
}

fn snappy(input: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), LogError> {
    if !input.starts_with(XERIAL_MAGIC) {
        return snappy_raw(input, limit_bytes, out);
    }
    let mut rest = input.get(XERIAL_HEADER_BYTES..).ok_or(BAD)?;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest.get(..4).ok_or(BAD)?.try_into().map_err(|_| BAD)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..).and_then(|r| r.get(..len)).ok_or(BAD)?;
        snappy_raw(block, limit_bytes, out)?;
        rest = &rest[4 + len..];
    }
    Ok(())
}

/// One raw snappy block appended to `out`. Its declared length is checked against the limit
/// before anything is allocated for it.
fn snappy_raw(block: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), LogError> {
    let n = snap::raw::decompress_len(block).map_err(|_| BAD)?;
    if out.len().saturating_add(n) > limit_bytes {
        return Err(TOO_BIG);
    }
    let start = out.len();
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|_| BAD)?;
    // A block shorter than it declared leaves no zeros behind it in the records.
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn compress_round_trips_in_every_codec() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_be_bytes()).collect();
        for c in [codec::NONE, codec::GZIP, codec::SNAPPY, codec::LZ4, codec::ZSTD] {
            let packed = compress(c, &data).expect("compresses");
            assert_eq!(decompress(c, &packed, 1 << 22).expect("decompresses"), data, "codec {c}");
        }
        assert!(compress(codec::SNAPPY, &data).expect("snappy").starts_with(XERIAL_MAGIC));
    }

    use super::*;

    fn records_section() -> Vec<u8> {
        (0..5000u32).flat_map(|i| (i % 97).to_be_bytes()).collect()
    }

    #[test]
    fn snappy_xerial_framing_and_raw() {
        let data = records_section();
        let raw = snap::raw::Encoder::new().compress_vec(&data).expect("compress");
        assert_eq!(decompress(codec::SNAPPY, &raw, 1 << 20).expect("raw"), data);
        // Java's xerial framing: magic, version, compatible version, then (u32 length, block)*.
        let (a, b) = data.split_at(7000);
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        for part in [a, b] {
            let block = snap::raw::Encoder::new().compress_vec(part).expect("compress");
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(decompress(codec::SNAPPY, &framed, 1 << 20).expect("xerial"), data);
        assert!(decompress(codec::SNAPPY, &framed[..framed.len() - 3], 1 << 20).is_err());
    }

    #[test]
    fn output_is_bounded_and_garbage_is_an_error() {
        let data = records_section();
        let z = zstd::encode_all(&data[..], 3).expect("zstd");
        assert_eq!(decompress(codec::ZSTD, &z, 1 << 20).expect("zstd"), data);
        assert!(decompress(codec::ZSTD, &z, 100).is_err(), "limit enforced");
        for c in [codec::GZIP, codec::SNAPPY, codec::LZ4, codec::ZSTD] {
            assert!(decompress(c, b"definitely not compressed", 1 << 20).is_err(), "codec {c}");
        }
        assert!(decompress(9, b"", 10).is_err());
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_the_scratch_is_reused() {
        // 64 frames of 1 MiB of zeros each: a few KiB that would inflate to 64 MiB.
        let frame = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).expect("zstd");
        let bomb = frame.repeat(64);
        let e = with_decompressed(codec::ZSTD, &bomb, 4 << 20, |_| Ok(()));
        assert!(matches!(e, Err(LogError::InvalidRecord(_))), "{e:?}");
        // A snappy block declaring more than the limit is refused before any allocation.
        let big = snap::raw::Encoder::new().compress_vec(&vec![0u8; 1 << 20]).expect("snappy");
        assert!(decompress(codec::SNAPPY, &big, 1 << 19).is_err());
        let data = records_section();
        let z = zstd::encode_all(&data[..], 3).expect("zstd");
        let first = with_decompressed(codec::ZSTD, &z, 1 << 20, |plain| Ok(plain.as_ptr() as usize));
        let again = with_decompressed(codec::ZSTD, &z, 1 << 20, |plain| {
            assert_eq!(plain, &data[..]);
            Ok(plain.as_ptr() as usize)
        });
        assert_eq!(first.expect("first"), again.expect("again"), "the thread's buffer is kept");
    }
}
