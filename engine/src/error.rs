//! `LogError`: every way a log operation can fail. Bad input from clients is a typed error
//! that leaves the log untouched; environmental failures (I/O errors, a failed fsync) poison
//! the log. The engine knows no wire numbers: the broker carries the error whole (its fields
//! and message) to its API edge, which maps each variant to its Kafka error code once
//! (`server/src/api/error.rs`), so what a client reads is the cause as stated here.

use std::io;

use riptide_model::{Offset, ProducerEpoch, ProducerId};

/// A failed log operation.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    /// The bytes are not a well-formed record batch (length, CRC, framing).
    #[error("corrupt message: {0}")]
    CorruptMessage(&'static str),
    /// A well-formed batch whose content breaks a rule (offset deltas, counts, attributes).
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    /// Records of a batch that break a rule of their own (Kafka's `RecordValidationException`):
    /// the whole record set is refused, each offending record named by its index in its batch.
    #[error("{} record(s) rejected: {}", .0.len(), .0.first().map_or("", |e| e.problem.describe()))]
    InvalidRecords(Vec<RecordError>),
    /// `InvalidRecords` where a record's timestamp is among the causes: Kafka answers those
    /// INVALID_TIMESTAMP, naming every offending record (of either kind).
    #[error("invalid timestamp: {} record(s) rejected: {}", .0.len(), .0.first().map_or("", |e| e.problem.describe()))]
    InvalidRecordTimestamps(Vec<RecordError>),
    /// A batch larger than `max.message.bytes` (or than a whole segment).
    #[error("message too large: {size_bytes} bytes, limit {limit_bytes}")]
    MessageTooLarge { size_bytes: u64, limit_bytes: u64 },
    /// The requested offset is outside [log start, log end].
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: Offset, log_start_offset: Offset, log_end_offset: Offset },
    /// A record timestamp outside the accepted window, or a LogAppendTime batch from a client.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(&'static str),
    /// Idempotent producer sent a sequence that does not follow the last one.
    #[error("out of order sequence for producer {producer_id}: expected {expected_seq}, got {got_seq}")]
    OutOfOrderSequence { producer_id: ProducerId, expected_seq: i32, got_seq: i32 },
    /// Idempotent producer used an epoch older than the one we know.
    #[error("producer {producer_id} epoch {got_epoch} is older than current epoch {current_epoch}")]
    InvalidProducerEpoch { producer_id: ProducerId, got_epoch: ProducerEpoch, current_epoch: ProducerEpoch },
    /// A marker from a transaction coordinator older than the one of the producer's last.
    #[error("producer {producer_id}: marker from coordinator epoch {got_epoch}, {current_epoch} seen")]
    CoordinatorFenced { producer_id: ProducerId, got_epoch: i32, current_epoch: i32 },
    /// The request itself makes no sense (e.g. an empty record set).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// An on-disk file is inconsistent in a way recovery cannot repair.
    #[error("storage error: {0}")]
    Storage(String),
    /// An earlier write or fsync failed; the log refuses further writes until reopened.
    #[error("log is failed after an earlier I/O error: {0}")]
    Poisoned(String),
    /// An I/O error on this operation.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// One record a batch was refused for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The record's position in its batch (0-based), as Produce v8+ `record_errors` reports it.
    pub batch_index: i32,
    pub problem: RecordProblem,
}

/// Why a single record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// A null key on a topic whose `cleanup.policy` has `compact`: compaction keeps the
    /// latest record per key, so a keyless one could never be kept or removed sensibly.
    NoKeyOnCompactedTopic,
    /// A CreateTime timestamp outside [now - `message.timestamp.before.max.ms`,
    /// now + `message.timestamp.after.max.ms`].
    TimestampOutOfRange { timestamp_ms: i64, earliest_ms: i64, latest_ms: i64 },
}

impl RecordProblem {
    pub fn describe(self) -> &'static str {
        match self {
            RecordProblem::NoKeyOnCompactedTopic => "compacted topic cannot accept message without key",
            RecordProblem::TimestampOutOfRange { .. } => "timestamp outside the accepted window",
        }
    }
}

impl LogError {
    /// True for errors that come from the environment (disk), not from the request.
    pub fn is_storage(&self) -> bool {
        matches!(self, LogError::Storage(_) | LogError::Poisoned(_) | LogError::Io(_))
    }
}
