//! riptide-engine: the storage engine of Riptide, a Kafka-compatible broker.
//!
//! A `Log` is one partition: a directory of segments in Kafka's on-disk format
//! (`<20-digit base offset>.log` holding RecordBatch v2 bytes as Kafka stores them, with
//! `.index` and `.timeindex`), plus Kafka-format checkpoints (recovery point, log start,
//! leader epochs) and idempotent-producer snapshots. The engine knows nothing about sockets
//! or requests: it validates and stores batches, answers reads with file ranges, and makes
//! data durable by group commit (`sync_target` + `mark_durable`, or `sync`).
//!
//! Module map: `log` (the `Log` API), `segment`, `index`, `batch` (RecordBatch v2 in place),
//! `producer_state`, `epoch_cache`, `checkpoint`, `recovery`, `compression`, `io` (the only
//! module touching kernel I/O: io_uring or std), `config`, `error`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod batch;
pub mod checkpoint;
pub mod compression;
pub mod config;
pub mod epoch_cache;
pub mod error;
pub mod index;
pub mod io;
mod log;
pub mod producer_state;
mod recovery;
pub mod seal;
mod segment;

pub use config::{IoBackend, LogConfig, TimestampType};
pub use error::{LogError, RecordError, RecordProblem};
pub use log::{
    remove_retired_dirs, AppendInfo, CheckpointWrite, CompactionDone, CompactionJob, CompactionStats,
    DirRemoval, Log, PreparedSegment, ReadSlice, ReplacedSegments, RetentionWrite, SegmentPrep, SyncTarget,
    TimestampAndOffset,
};
pub use producer_state::{AbortedTxn, ProducerSummary};
pub use riptide_format::control::{ControlType, TxnMarker};
pub use seal::BatchSealer;
