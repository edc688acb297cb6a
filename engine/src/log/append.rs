//! The append path: validate every batch of the request, check idempotent sequences, roll if
//! needed, assign offsets/epoch/LogAppendTime in place, write once, then update indexes,
//! producer state and the leader-epoch cache. Nothing is written unless every batch passed.

use super::{AppendInfo, Log};
use crate::batch::{self, Assignment, BatchHeader, Limits, ValidBatch};
use crate::config::TimestampType;
use crate::error::LogError;
use crate::producer_state::SequenceCheck;
use crate::segment::BatchMeta;
use riptide_format::control::{marker_batch, TxnMarker};
use riptide_model::{LeaderEpoch, Offset};

/// Outcome of validating a whole record set.
enum Validated {
    /// New data: total records and bytes.
    New { records: i64, bytes: u64 },
    /// An idempotent retry; answer with the original offsets.
    Duplicate(AppendInfo),
}

impl Log {
    /// Seals every batch appended from now on (`None`: write them as they come).
    pub fn set_sealer(&mut self, sealer: Option<std::sync::Arc<dyn crate::seal::BatchSealer>>) {
        self.sealer = sealer;
    }

    /// Appends one or more concatenated RecordBatch v2 (a Produce request's records for one
    /// partition). See the crate docs for the contract.
    pub fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_validated(batches, now_ms, true, |log, batches, valid, records, bytes| {
            log.write_set(batches, valid, records, bytes, leader_epoch.0, now_ms)
        })
    }

    /// `append` for a coordinator's own transactional batches (TxnOffsetCommit records in
    /// `__consumer_offsets`): they carry the producer's id and epoch, so the producer's
    /// transaction opens here and its marker ends it, but no sequence of the producer's (Kafka
    /// writes them with the coordinator as origin, which skips the sequence check).
    pub fn append_unsequenced(
        &mut self,
        batches: &mut [u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_validated(batches, now_ms, false, |log, batches, valid, records, bytes| {
            log.write_set(batches, valid, records, bytes, leader_epoch.0, now_ms)
        })
    }

    /// `append` for bytes the caller cannot give up (a request buffer still shared with its
    /// frame). With direct appends they are copied once, straight into the stage, and their
    /// offsets assigned there; otherwise they are copied into a buffer this log keeps for
    /// the purpose (no allocation per append) and appended from it.
    pub fn append_shared(
        &mut self,
        batches: &[u8],
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_validated(batches, now_ms, true, |log, batches, valid, records, bytes| {
            log.write_shared(batches, valid, records, bytes, leader_epoch.0, now_ms)
        })
    }

    /// `append_shared` for a batch received into a landing buffer (`LandingBuf`): with direct
    /// appends its buffer becomes the stage when it landed at the stage end's block phase,
    /// so the batch is not copied at all; otherwise as `append_shared`.
    pub fn append_landed(
        &mut self,
        landed: &crate::io::direct::Landed,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        // The bytes go in as `Bytes`, not a reference: validation reads them through a
        // reference of its own, which has ended before the takeover writes offsets into them.
        self.append_validated(landed.bytes(), now_ms, true, |log, batches, valid, records, bytes| {
            drop(batches);
            log.write_landed(landed, valid, records, bytes, leader_epoch.0, now_ms)
        })
    }

    /// Where the next append goes in the active segment (its block phase is where a landing
    /// buffer should place it), when the segment takes direct appends (`None` otherwise, or
    /// before its first append).
    pub fn landing_position(&self) -> Option<u32> {
        let active = self.segments.last()?;
        active.takes_landed().then_some(active.size_bytes)
    }

    /// Validates `batches` (with the log's scratch list of valid batches), answers an
    /// idempotent retry with its original offsets, and hands new data to `write`.
    fn append_validated<B: std::ops::Deref<Target = [u8]>>(
        &mut self,
        batches: B,
        now_ms: i64,
        sequenced: bool,
        write: impl FnOnce(&mut Log, B, &[ValidBatch], i64, u64) -> Result<AppendInfo, LogError>,
    ) -> Result<AppendInfo, LogError> {
        self.check_writable()?;
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("empty record set"));
        }
        let mut valid = std::mem::take(&mut self.scratch_batches);
        valid.clear();
        let result = match self.validate_set(&batches, now_ms, sequenced, &mut valid) {
            Ok(Validated::Duplicate(info)) => Ok(info),
            Ok(Validated::New { records, bytes }) => write(self, batches, &valid, records, bytes),
            Err(e) => Err(e),
        };
        valid.clear();
        self.scratch_batches = valid;
        result
    }

    /// `write_shared` for a landed batch: taken over by the direct stage, or copied.
    fn write_landed(
        &mut self,
        landed: &crate::io::direct::Landed,
        valid: &[ValidBatch],
        records: i64,
        bytes: u64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let base = self.next_offset();
        self.roll_if_needed(bytes, base + records - 1, now_ms)?;
        self.prepare_write();
        if self.sealer.is_none() {
            let append_time = (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
            let patch = |dst: &mut [u8]| assign_all(dst, valid, base, leader_epoch, append_time);
            if let Some(written) = self.active_mut().write_landed(landed, patch) {
                let position = match written {
                    Ok(p) => p,
                    Err(e) => return Err(self.fail("segment write", e)),
                };
                return self.finish_write(valid, None, base, records, position, leader_epoch, now_ms);
            }
        }
        self.write_shared(&landed.bytes(), valid, records, bytes, leader_epoch, now_ms)
    }

    fn write_shared(
        &mut self,
        batches: &[u8],
        valid: &[ValidBatch],
        records: i64,
        bytes: u64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let base = self.next_offset();
        self.roll_if_needed(bytes, base + records - 1, now_ms)?;
        self.prepare_write();
        if self.sealer.is_none() {
            let append_time = (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
            let patch = |dst: &mut [u8]| assign_all(dst, valid, base, leader_epoch, append_time);
            if let Some(written) = self.active_mut().write_patched(batches, patch) {
                let position = match written {
                    Ok(p) => p,
                    Err(e) => return Err(self.fail("segment write", e)),
                };
                return self.finish_write(valid, None, base, records, position, leader_epoch, now_ms);
            }
        }
        let mut copy = std::mem::take(&mut self.scratch_copy);
        copy.clear();
        copy.extend_from_slice(batches);
        let result = self.write_set(&mut copy, valid, records, bytes, leader_epoch, now_ms);
        self.scratch_copy = copy;
        result
    }

    fn limits(&self, now_ms: i64) -> Limits {
        Limits {
            max_message_bytes: self.config.max_message_bytes,
            timestamp_type: self.config.timestamp_type,
            timestamp_before_max_ms: self.config.timestamp_before_max_ms,
            timestamp_after_max_ms: self.config.timestamp_after_max_ms,
            now_ms,
            keys_required: self.config.keys_required,
            decompressed_bytes_max: crate::compression::DECOMPRESSED_BYTES_MAX,
        }
    }

    fn validate_set(
        &mut self,
        batches: &[u8],
        now_ms: i64,
        sequenced: bool,
        valid: &mut Vec<ValidBatch>,
    ) -> Result<Validated, LogError> {
        let limits = self.limits(now_ms);
        let mut staged = std::mem::take(&mut self.scratch_staged);
        staged.clear();
        let (mut pos, mut records) = (0usize, 0i64);
        let mut outcome = None;
        while pos < batches.len() {
            let v = match batch::validate(&batches[pos..], &limits) {
                Ok(v) => v,
                Err(e) => {
                    outcome = Some(Err(e));
                    break;
                }
            };
            if v.header.is_idempotent() && sequenced {
                match self.producers.check_staged(&v.header, &staged) {
                    Ok(SequenceCheck::Accept) => self.producers.stage(&v.header, &mut staged),
                    Ok(SequenceCheck::Duplicate { first_offset, last_offset }) => {
                        outcome =
                            Some(Ok(Validated::Duplicate(self.duplicate_info(first_offset, last_offset))));
                        break;
                    }
                    Err(e) => {
                        outcome = Some(Err(e));
                        break;
                    }
                }
            }
            records += i64::from(v.header.records_count);
            pos += v.size_bytes;
            valid.push(v);
        }
        staged.clear();
        self.scratch_staged = staged;
        if let Some(o) = outcome {
            return o;
        }
        let bytes = batches.len() as u64;
        if bytes > self.config.segment_bytes {
            return Err(LogError::MessageTooLarge {
                size_bytes: bytes,
                limit_bytes: self.config.segment_bytes,
            });
        }
        Ok(Validated::New { records, bytes })
    }

    fn duplicate_info(&self, first_offset: i64, last_offset: i64) -> AppendInfo {
        AppendInfo {
            base_offset: Offset(first_offset),
            last_offset: Offset(last_offset),
            log_append_time_ms: -1,
            log_start_offset: Offset(self.log_start_offset),
            duplicate: true,
        }
    }

    fn write_set(
        &mut self,
        batches: &mut [u8],
        valid: &[ValidBatch],
        records: i64,
        bytes: u64,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let base = self.next_offset();
        let last = base + records - 1;
        self.roll_if_needed(bytes, last, now_ms)?;
        let append_time = (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        assign_all(batches, valid, base, leader_epoch, append_time);
        let io = self.io;
        let sealed = match &self.sealer {
            Some(s) => Some(seal_all(s.as_ref(), batches, valid)?),
            None => None,
        };
        let (bytes_out, sizes): (&[u8], Option<&[u32]>) = match &sealed {
            Some((b, sizes)) => (b, Some(sizes)),
            None => (batches, None),
        };
        self.prepare_write();
        let position = match self.active_mut().write(io, bytes_out) {
            Ok(p) => p,
            Err(e) => return Err(self.fail("segment write", e)),
        };
        self.finish_write(valid, sizes, base, records, position, leader_epoch, now_ms)
    }

    /// Bookkeeping after the bytes of a validated set are written at `position`.
    #[allow(clippy::too_many_arguments)]
    fn finish_write(
        &mut self,
        valid: &[ValidBatch],
        sealed_sizes: Option<&[u32]>,
        base: i64,
        records: i64,
        position: u32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let append_time = (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        self.track_all(valid, sealed_sizes, base, position, append_time);
        self.active_mut().last_modified_ms = now_ms;
        self.note_leader_epoch(leader_epoch, base)?;
        let last = base + records - 1;
        debug_assert_eq!(self.next_offset(), last + 1);
        Ok(AppendInfo {
            base_offset: Offset(base),
            last_offset: Offset(last),
            log_append_time_ms: append_time.unwrap_or(-1),
            log_start_offset: Offset(self.log_start_offset),
            duplicate: false,
        })
    }

    fn track_all(
        &mut self,
        valid: &[ValidBatch],
        sealed_sizes: Option<&[u32]>,
        base: i64,
        position: u32,
        append_time: Option<i64>,
    ) {
        let (mut next, mut pos) = (base, position);
        for (i, v) in valid.iter().enumerate() {
            let size_bytes = sealed_sizes.map_or(v.size_bytes as u32, |s| s[i]);
            let mut h = v.header;
            h.base_offset = next;
            let max_ts = append_time.unwrap_or(v.max_timestamp_ms);
            let meta = BatchMeta {
                base_offset: next,
                last_offset: h.last_offset(),
                max_timestamp_ms: max_ts,
                size_bytes,
            };
            self.active_mut().track(&meta, pos);
            // Markers are recorded by `append_marker`, which knows their type.
            if h.is_idempotent() && !h.is_control() {
                self.producers.record(&h, max_ts);
            }
            next = h.last_offset() + 1;
            pos += size_bytes;
        }
    }

    /// Appends a transaction marker (a COMMIT or ABORT control batch) for a producer: its
    /// open transaction here ends, an aborted one enters the aborted index. A marker with an
    /// epoch older than the producer's is refused (INVALID_PRODUCER_EPOCH).
    pub fn append_marker(
        &mut self,
        marker: &TxnMarker,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_writable()?;
        self.producers.check_marker(marker.producer_id, marker.producer_epoch, marker.coordinator_epoch)?;
        let mut batch = marker_batch(marker, now_ms);
        let header =
            BatchHeader::parse(&batch).ok_or(LogError::CorruptMessage("a marker batch without a header"))?;
        let size_bytes = batch.len();
        let valid = [ValidBatch { header, size_bytes, max_timestamp_ms: now_ms, max_timestamp_delta: 0 }];
        // Never sealed: a marker holds no user data, and recovery must read its type back.
        let sealer = self.sealer.take();
        let written = self.write_set(&mut batch, &valid, 1, size_bytes as u64, leader_epoch.0, now_ms);
        self.sealer = sealer;
        let info = written?;
        self.producers.record_marker(
            marker.producer_id,
            marker.producer_epoch,
            (marker.control, marker.coordinator_epoch),
            info.base_offset.0,
            now_ms,
        );
        Ok(info)
    }

    /// This replica leads from now on at `leader_epoch`: the epoch starts at the log end, before
    /// any batch of it is written (Kafka's `assign` on becoming leader), so a follower whose
    /// last epoch this log never saw is told where the leader's older epoch ended.
    pub fn begin_leader_epoch(&mut self, leader_epoch: LeaderEpoch) -> Result<(), LogError> {
        self.check_writable()?;
        let leo = self.active().next_offset;
        self.note_leader_epoch(leader_epoch.0, leo)
    }

    /// Records a new leader epoch's start offset (persisted at once: epochs change rarely).
    pub(super) fn note_leader_epoch(&mut self, leader_epoch: i32, base: i64) -> Result<(), LogError> {
        let newer = self.epochs.latest_epoch().is_none_or(|latest| leader_epoch > latest);
        if leader_epoch >= 0 && newer && self.epochs.assign(leader_epoch, base) {
            if let Err(e) = self.write_epoch_checkpoint() {
                return Err(self.fail_with("leader-epoch checkpoint", e));
            }
        }
        Ok(())
    }

    /// Rolls before writing `bytes` ending at offset `last` when the active segment is full
    /// by size, by index, by age (segment.ms) or by relative-offset range.
    pub(super) fn roll_if_needed(&mut self, bytes: u64, last: i64, now_ms: i64) -> Result<(), LogError> {
        let seg = self.active();
        if seg.is_empty() {
            return Ok(());
        }
        let too_big = u64::from(seg.size_bytes) + bytes > self.config.segment_bytes;
        let too_old = now_ms.saturating_sub(seg.roll_base_ms) >= self.config.segment_ms;
        let offsets_overflow = last - seg.base_offset > i64::from(i32::MAX);
        if too_big || too_old || offsets_overflow || seg.index_full() {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    pub(super) fn fail_with(&mut self, what: &str, err: LogError) -> LogError {
        match err {
            LogError::Io(e) => self.fail(what, e),
            other => {
                if self.failed.is_none() {
                    self.failed = Some(format!("{what} failed: {other}"));
                }
                other
            }
        }
    }
}

/// Each batch sealed, concatenated, and the sealed size of each.
fn seal_all(
    sealer: &dyn crate::seal::BatchSealer,
    batches: &[u8],
    valid: &[ValidBatch],
) -> Result<(Vec<u8>, Vec<u32>), LogError> {
    let mut out = Vec::with_capacity(batches.len() + valid.len() * 64);
    let mut sizes = Vec::with_capacity(valid.len());
    let mut pos = 0usize;
    for v in valid {
        let before = out.len();
        sealer
            .seal(&batches[pos..pos + v.size_bytes], &mut out)
            .map_err(|e| LogError::Storage(format!("sealing a batch: {e}")))?;
        sizes.push((out.len() - before) as u32);
        pos += v.size_bytes;
    }
    Ok((out, sizes))
}

fn assign_all(
    batches: &mut [u8],
    valid: &[ValidBatch],
    base: i64,
    leader_epoch: i32,
    append_time: Option<i64>,
) {
    let (mut next, mut pos) = (base, 0usize);
    for v in valid {
        let a = Assignment {
            base_offset: Offset(next),
            leader_epoch: LeaderEpoch(leader_epoch),
            log_append_time_ms: append_time,
        };
        batch::assign(&mut batches[pos..pos + v.size_bytes], v, &a);
        next += i64::from(v.header.records_count);
        pos += v.size_bytes;
    }
    debug_assert_eq!(pos, batches.len());
}
