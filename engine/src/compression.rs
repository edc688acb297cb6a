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

#[cfg(test)]
mod tests {
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
}
