//! Timestamp lookups for ListOffsets: the first record whose timestamp is >= a target
//! (decoding record timestamps, decompressing batches when needed), and the log's max
//! timestamp with the exact offset of the record carrying it.

use super::Log;
use crate::batch::{self, codec, BatchHeader, HEADER_BYTES};
use crate::compression;
use crate::error::LogError;
use crate::segment::scan_batches;
use riptide_model::Offset;

/// A record's offset and its timestamp (Kafka's `TimestampAndOffset`), as ListOffsets answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampAndOffset {
    pub timestamp_ms: i64,
    pub offset: Offset,
}

impl Log {
    /// Kafka ListOffsets by timestamp: the earliest record whose timestamp is >=
    /// `timestamp_ms`, or `None` if there is none.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampAndOffset>, LogError> {
        for i in 0..self.segments.len() {
            if self.segments[i].max_timestamp_ms < timestamp_ms {
                continue;
            }
            if let Some((offset, ts)) = self.search_segment(i, timestamp_ms)? {
                return Ok(Some(TimestampAndOffset { timestamp_ms: ts, offset: Offset(offset) }));
            }
        }
        Ok(None)
    }

    /// The max timestamp and the offset of the first record carrying it, for ListOffsets -3.
    pub fn max_timestamp(&self) -> Option<TimestampAndOffset> {
        let mut best: Option<usize> = None;
        for (i, s) in self.segments.iter().enumerate() {
            if s.max_timestamp_ms >= 0
                && best.is_none_or(|b| s.max_timestamp_ms > self.segments[b].max_timestamp_ms)
            {
                best = Some(i);
            }
        }
        let seg = &self.segments[best?];
        let exact = self.search_segment(best?, seg.max_timestamp_ms).ok().flatten();
        let (offset, timestamp_ms) = exact.unwrap_or((seg.offset_of_max_timestamp, seg.max_timestamp_ms));
        Some(TimestampAndOffset { timestamp_ms, offset: Offset(offset) })
    }

    fn search_segment(&self, i: usize, target_ms: i64) -> Result<Option<(i64, i64)>, LogError> {
        let seg = &self.segments[i];
        let from = seg.time_index.lookup_before(target_ms).max(self.log_start_offset);
        let Some((start, _)) = seg.find_batch(self.io, from)? else { return Ok(None) };
        let mut buf = Vec::new();
        let mut found = None;
        let log_start = self.log_start_offset;
        scan_batches(self.io, &seg.log, start, seg.size_bytes, &mut buf, |_, bytes| {
            let Some(h) = BatchHeader::parse(bytes) else { return Ok(false) };
            if h.max_timestamp < target_ms || h.last_offset() < log_start {
                return Ok(true);
            }
            found = first_record_at_or_after(&h, bytes, target_ms, log_start)?;
            Ok(found.is_none())
        })?;
        Ok(found)
    }
}

/// The first record of a stored batch with timestamp >= `target_ms` and offset >= `min_offset`.
fn first_record_at_or_after(
    h: &BatchHeader,
    bytes: &[u8],
    target_ms: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    if h.is_log_append_time() {
        // Every record of a LogAppendTime batch carries the batch's max timestamp.
        return Ok((h.max_timestamp >= target_ms).then(|| (h.base_offset.max(min_offset), h.max_timestamp)));
    }
    // Compacted batches have gaps in their offset deltas.
    let search = |records: &[u8]| {
        batch::walk_records(records, h, batch::Deltas::Increasing, |r| {
            !(r.timestamp_ms >= target_ms && h.base_offset + i64::from(r.offset_delta) >= min_offset)
        })
    };
    let records = &bytes[HEADER_BYTES..];
    let walk = if h.codec() == codec::NONE {
        search(records)?
    } else {
        compression::with_decompressed(h.codec(), records, compression::DECOMPRESSED_BYTES_MAX, search)?
    };
    Ok(walk.stopped_at.map(|(delta, ts)| (h.base_offset + i64::from(delta), ts)))
}
