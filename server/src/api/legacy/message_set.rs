//! Kafka's old message formats (magic 0 and 1, "message sets") against today's record batches
//! (magic 2): up-conversion of what Produce v0–2 carries, and down-conversion of stored batches
//! for Fetch v0–3, as Kafka 3.9 did for clients older than 0.11.
//!
//! A message set is a run of `[offset i64][size i32][crc u32][magic i8][attributes i8]
//! [timestamp i64, magic 1 only][key bytes][value bytes]`, the CRC being CRC-32 (IEEE) of
//! magic..value. A compressed message (codec in attributes bits 0–2) wraps an inner message
//! set, compressed, as its value. Magic 0 has no timestamps (they become -1, Kafka's
//! NO_TIMESTAMP); magic 1's attribute bit 3 says LogAppendTime, with the wrapper's timestamp
//! applying to every inner message. Converted batches are stored uncompressed.

use bytes::{BufMut, Bytes, BytesMut};
use riptide_engine::compression;
use riptide_format::build::{self, BatchFields, RecordFields};
use riptide_format::{attr, codec, BatchHeader, HEADER_BYTES};

/// Kafka's NO_TIMESTAMP: a magic-0 message has none.
const NO_TIMESTAMP: i64 = -1;
const TIMESTAMP_TYPE_BIT: i8 = 0x08;
/// What an inner message set may decompress to (the engine's bound for a batch).
const INNER_BYTES_MAX: usize = compression::DECOMPRESSED_BYTES_MAX;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    #[error("truncated message set")]
    Truncated,
    #[error("message CRC mismatch")]
    Crc,
    #[error("unknown message magic {0}")]
    Magic(i8),
    #[error("compression codec {0} is not allowed in message format v0/v1")]
    Codec(u8),
    #[error("compressed messages do not decompress")]
    Decompress,
    #[error("nested compressed message")]
    Nested,
    #[error("empty message set")]
    Empty,
    #[error("malformed record batch")]
    Batch,
}

/// One message of an old message set, decoded.
struct Message<'a> {
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LegacyError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or(LegacyError::Truncated)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i8(&mut self) -> Result<i8, LegacyError> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i32(&mut self) -> Result<i32, LegacyError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().map_err(|_| LegacyError::Truncated)?))
    }

    fn i64(&mut self) -> Result<i64, LegacyError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| LegacyError::Truncated)?))
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, LegacyError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize).map(Some)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Calls `f` with every message of `set`, decompressing wrapper messages (one level).
fn for_each_message<'a>(
    set: &'a [u8],
    nested: bool,
    f: &mut dyn FnMut(Message<'_>) -> Result<(), LegacyError>,
) -> Result<(), LegacyError> {
    let mut r = Reader { buf: set, pos: 0 };
    while !r.done() {
        let _offset = r.i64()?;
        let size = r.i32()?;
        if size < 0 {
            return Err(LegacyError::Truncated);
        }
        let body = r.take(size as usize)?;
        let mut m = Reader { buf: body, pos: 0 };
        let crc = m.take(4)?;
        let covered = &body[4..];
        if crc32fast::hash(covered).to_be_bytes() != crc {
            return Err(LegacyError::Crc);
        }
        let magic = m.i8()?;
        if !(0..=1).contains(&magic) {
            return Err(LegacyError::Magic(magic));
        }
        let attributes = m.i8()?;
        let timestamp = if magic == 1 { m.i64()? } else { NO_TIMESTAMP };
        let key = m.bytes()?;
        let value = m.bytes()?;
        let codec_id = (attributes & 0x07) as u8;
        if codec_id == codec::NONE {
            f(Message { timestamp, key, value })?;
            continue;
        }
        if nested {
            return Err(LegacyError::Nested);
        }
        if !matches!(codec_id, codec::GZIP | codec::SNAPPY | codec::LZ4) {
            return Err(LegacyError::Codec(codec_id));
        }
        let inner = compression::decompress(codec_id, value.unwrap_or_default(), INNER_BYTES_MAX)
            .map_err(|_| LegacyError::Decompress)?;
        let log_append_time = magic == 1 && attributes & TIMESTAMP_TYPE_BIT != 0;
        for_each_message(&inner, true, &mut |mut inner_message| {
            if log_append_time {
                inner_message.timestamp = timestamp;
            }
            f(inner_message)
        })?;
    }
    Ok(())
}

/// Produce v0–2: an old message set as one uncompressed record batch (offsets 0..n-1, as a
/// producer's batch), which the produce path then validates like any other.
pub fn up_convert(set: &[u8]) -> Result<Bytes, LegacyError> {
    let mut b = BytesMut::with_capacity(HEADER_BYTES + set.len());
    build::put_header_room(&mut b);
    let mut count: i64 = 0;
    let (mut base, mut max) = (NO_TIMESTAMP, NO_TIMESTAMP);
    for_each_message(set, false, &mut |m| {
        if count == 0 {
            (base, max) = (m.timestamp, m.timestamp);
        }
        max = max.max(m.timestamp);
        build::put_record(
            &mut b,
            RecordFields {
                offset_delta: count,
                timestamp_delta: m.timestamp - base,
                key: m.key,
                value: m.value,
                headers: std::iter::empty(),
            },
        );
        count += 1;
        Ok(())
    })?;
    if count == 0 {
        return Err(LegacyError::Empty);
    }
    let count = i32::try_from(count).map_err(|_| LegacyError::Batch)?;
    build::write_header(&mut b, &BatchFields::plain(count, base, max, 0));
    Ok(b.freeze())
}

/// Fetch v0–3: stored record batches as a message set in `magic` (0 or 1), uncompressed.
/// Control batches are left out (old formats have none; an old consumer reads uncommitted),
/// and so are headers. A batch that does not parse ends the conversion there (the reader sees
/// what came before, as after a partial read).
pub fn down_convert(batches: &[u8], magic: i8) -> Bytes {
    let mut out = BytesMut::with_capacity(batches.len() + batches.len() / 4);
    let mut pos = 0;
    while let Some(h) = BatchHeader::parse(&batches[pos..]) {
        let Some(size) = h.size_bytes().filter(|s| pos + s <= batches.len()) else { break };
        let batch = &batches[pos..pos + size];
        pos += size;
        if h.is_control() {
            continue;
        }
        let body = &batch[HEADER_BYTES..];
        let codec_id = h.codec();
        let decompressed;
        let records = if codec_id == codec::NONE {
            body
        } else {
            match compression::decompress(codec_id, body, INNER_BYTES_MAX) {
                Ok(d) => {
                    decompressed = d;
                    &decompressed[..]
                }
                Err(_) => break,
            }
        };
        let log_append_time = h.attributes & attr::LOG_APPEND_TIME != 0;
        let converted = for_each_record(records, h.records_count, |delta, ts_delta, key, value| {
            let timestamp = if log_append_time { h.max_timestamp } else { h.base_timestamp + ts_delta };
            put_message(
                &mut out,
                h.base_offset + i64::from(delta),
                magic,
                log_append_time,
                timestamp,
                key,
                value,
            );
        });
        if converted.is_err() {
            break;
        }
    }
    out.freeze()
}

/// One message of format `magic`, with its offset and CRC.
fn put_message(
    out: &mut BytesMut,
    offset: i64,
    magic: i8,
    log_append_time: bool,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    out.put_i64(offset);
    let size_at = out.len();
    out.put_i32(0);
    let crc_at = out.len();
    out.put_u32(0);
    out.put_i8(magic);
    out.put_i8(if magic == 1 && log_append_time { TIMESTAMP_TYPE_BIT } else { 0 });
    if magic == 1 {
        out.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                out.put_i32(b.len() as i32);
                out.put_slice(b);
            }
            None => out.put_i32(-1),
        }
    }
    let size = (out.len() - crc_at) as i32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Walks `count` v2 records: (offset delta, timestamp delta, key, value) each.
fn for_each_record(
    mut records: &[u8],
    count: i32,
    mut f: impl FnMut(i32, i64, Option<&[u8]>, Option<&[u8]>),
) -> Result<(), LegacyError> {
    fn varint(b: &mut &[u8]) -> Result<i64, LegacyError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or(LegacyError::Batch)?;
            *b = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(LegacyError::Batch)
    }
    fn field<'a>(b: &mut &'a [u8]) -> Result<Option<&'a [u8]>, LegacyError> {
        let len = varint(b)?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| LegacyError::Batch)?;
        if len > b.len() {
            return Err(LegacyError::Batch);
        }
        let (v, rest) = b.split_at(len);
        *b = rest;
        Ok(Some(v))
    }
    for _ in 0..count {
        let len = usize::try_from(varint(&mut records)?).map_err(|_| LegacyError::Batch)?;
        if len > records.len() {
            return Err(LegacyError::Batch);
        }
        let (mut r, rest) = records.split_at(len);
        records = rest;
        let _attributes = r.split_first().ok_or(LegacyError::Batch)?;
        r = &r[1..];
        let ts_delta = varint(&mut r)?;
        let offset_delta = i32::try_from(varint(&mut r)?).map_err(|_| LegacyError::Batch)?;
        let key = field(&mut r)?;
        let value = field(&mut r)?;
        f(offset_delta, ts_delta, key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(magic: i8, attributes: i8, timestamp: i64, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_message(&mut out, 0, magic, attributes & TIMESTAMP_TYPE_BIT != 0, timestamp, key, Some(value));
        if attributes & 0x07 != 0 {
            // Re-stamp the attributes with the codec and fix the CRC.
            out[17] = attributes as u8;
            let crc = crc32fast::hash(&out[16..]);
            out[12..16].copy_from_slice(&crc.to_be_bytes());
        }
        out.to_vec()
    }

    fn records_of(batch: &[u8]) -> Vec<(i64, Option<Vec<u8>>, Vec<u8>)> {
        let h = BatchHeader::parse(batch).expect("header");
        let mut out = Vec::new();
        for_each_record(&batch[HEADER_BYTES..], h.records_count, |d, ts, k, v| {
            out.push((h.base_timestamp + ts, k.map(<[u8]>::to_vec), v.unwrap_or_default().to_vec()));
            assert_eq!(i64::from(d), out.len() as i64 - 1);
        })
        .expect("records");
        out
    }

    #[test]
    fn magic_0_and_1_messages_become_one_batch() {
        let set = [message(1, 0, 1_000, Some(b"k"), b"a"), message(1, 0, 1_005, None, b"b")].concat();
        let batch = up_convert(&set).expect("converts");
        let h = BatchHeader::parse(&batch).expect("header");
        assert_eq!((h.records_count, h.base_timestamp, h.max_timestamp), (2, 1_000, 1_005));
        assert_eq!(
            records_of(&batch),
            vec![(1_000, Some(b"k".to_vec()), b"a".to_vec()), (1_005, None, b"b".to_vec())]
        );
        let v0 = up_convert(&message(0, 0, 0, None, b"x")).expect("magic 0");
        assert_eq!(records_of(&v0), vec![(NO_TIMESTAMP, None, b"x".to_vec())]);
    }

    #[test]
    fn a_gzip_wrapper_is_unwrapped_and_log_append_time_applies_to_its_messages() {
        let inner = [message(1, 0, 5, None, b"one"), message(1, 0, 6, None, b"two")].concat();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &inner).expect("gzip");
        let compressed = gz.finish().expect("gzip");
        let wrapper = message(1, TIMESTAMP_TYPE_BIT | 1, 77, None, &compressed);
        let batch = up_convert(&wrapper).expect("converts");
        assert_eq!(records_of(&batch), vec![(77, None, b"one".to_vec()), (77, None, b"two".to_vec())]);
    }

    #[test]
    fn damage_is_refused() {
        let mut m = message(1, 0, 1, None, b"value");
        let last = m.len() - 1;
        m[last] ^= 1;
        assert_eq!(up_convert(&m), Err(LegacyError::Crc));
        assert_eq!(up_convert(&m[..m.len() - 2]), Err(LegacyError::Truncated));
        assert_eq!(up_convert(&[]), Err(LegacyError::Empty));
        let zstd = message(1, 4, 1, None, b"x");
        assert_eq!(up_convert(&zstd), Err(LegacyError::Codec(4)));
    }

    #[test]
    fn batches_come_back_as_messages_of_either_magic() {
        let set = [message(1, 0, 10, Some(b"k"), b"a"), message(1, 0, 12, None, b"b")].concat();
        let mut batch = up_convert(&set).expect("converts").to_vec();
        batch[..8].copy_from_slice(&40i64.to_be_bytes()); // stored at offset 40
        for magic in [0, 1] {
            let out = down_convert(&batch, magic);
            let mut seen = Vec::new();
            for_each_message(&out, false, &mut |m| {
                seen.push((m.timestamp, m.key.map(<[u8]>::to_vec), m.value.map(<[u8]>::to_vec)));
                Ok(())
            })
            .expect("valid messages");
            let ts = |t| if magic == 1 { t } else { NO_TIMESTAMP };
            assert_eq!(
                seen,
                vec![(ts(10), Some(b"k".to_vec()), Some(b"a".to_vec())), (ts(12), None, Some(b"b".to_vec()))]
            );
            assert_eq!(i64::from_be_bytes(out[..8].try_into().expect("offset")), 40);
        }
    }
}
