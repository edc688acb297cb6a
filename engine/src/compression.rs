//! Decompression of a batch's records section, used only where a feature must look inside
//! compressed batches (offset-for-timestamp). Batches are always stored as they came.
//! Output is bounded by `limit_bytes` so a hostile batch cannot balloon memory.

use std::io::Read;

use crate::batch::codec;
use crate::error::LogError;

/// Java clients frame snappy with xerial's header: magic, then (u32 length, block)*.
const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;

const BAD: LogError = LogError::CorruptMessage("compressed records do not decompress");

/// Decompresses `input` (a batch's records section) encoded with `codec_id`.
pub fn decompress(codec_id: u8, input: &[u8], limit_bytes: usize) -> Result<Vec<u8>, LogError> {
    match codec_id {
        codec::NONE => Ok(input.to_vec()),
        codec::GZIP => read_bounded(flate2::read::GzDecoder::new(input), limit_bytes),
        codec::SNAPPY => snappy(input, limit_bytes),
        codec::LZ4 => read_bounded(lz4_flex::frame::FrameDecoder::new(input), limit_bytes),
        codec::ZSTD => {
            let dec = zstd::stream::read::Decoder::new(input).map_err(|_| BAD)?;
            read_bounded(dec, limit_bytes)
        }
        _ => Err(LogError::InvalidRecord("unknown compression codec")),
    }
}

fn read_bounded(r: impl Read, limit_bytes: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    let mut limited = r.take(limit_bytes as u64 + 1);
    limited.read_to_end(&mut out).map_err(|_| BAD)?;
    if out.len() > limit_bytes {
        return Err(LogError::InvalidRecord("decompressed records exceed the limit"));
    }
    Ok(out)
}

fn snappy(input: &[u8], limit_bytes: usize) -> Result<Vec<u8>, LogError> {
    if !input.starts_with(XERIAL_MAGIC) {
        return snappy_raw(input, limit_bytes, Vec::new());
    }
    let mut out = Vec::new();
    let mut rest = input.get(XERIAL_HEADER_BYTES..).ok_or(BAD)?;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest.get(..4).ok_or(BAD)?.try_into().map_err(|_| BAD)?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..4 + len).ok_or(BAD)?;
        out = snappy_raw(block, limit_bytes, out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

fn snappy_raw(block: &[u8], limit_bytes: usize, mut out: Vec<u8>) -> Result<Vec<u8>, LogError> {
    let n = snap::raw::decompress_len(block).map_err(|_| BAD)?;
    if out.len() + n > limit_bytes {
        return Err(LogError::InvalidRecord("decompressed records exceed the limit"));
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|_| BAD)?;
    Ok(out)
}
