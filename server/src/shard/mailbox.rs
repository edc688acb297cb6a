//! The only way shards talk to each other: bounded queues of [`ShardMsg`].
//!
//! A connection's shard sends a message to a partition's owner shard and awaits the reply on a
//! one-shot channel. Everything in a message is `Send` (`Bytes`, `Arc<File>`), so no shard ever
//! touches another shard's state. When the connection's shard is the owner, `route` calls the
//! owner-side function directly: no queue, same code.

use std::sync::Arc;

use bytes::Bytes;
use riptide_engine::ReadSlice;

/// Capacity of each shard's inbox; senders wait (backpressure) when it is full.
pub const MAILBOX_CAPACITY: usize = 4096;

pub type ShardSender = flume::Sender<ShardMsg>;

pub enum ShardMsg {
    Produce(ProduceCall, flume::Sender<ProduceOutcome>),
    Read(ReadCall, flume::Sender<ReadOutcome>),
    ListOffset(ListOffsetCall, flume::Sender<ListOffsetOutcome>),
    /// Close and delete every partition of the topic this shard owns.
    DropTopic(Arc<str>, flume::Sender<()>),
    /// The topic's configs changed: reload them into open partitions.
    Reconfigure(Arc<str>),
    /// Stop accepting, flush and close every partition, then reply.
    Shutdown(flume::Sender<()>),
}

pub struct ProduceCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub records: Bytes,
    pub acks: i16,
}

#[derive(Clone, Debug, Default)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

impl ProduceOutcome {
    pub fn error(code: i16, message: Option<String>) -> ProduceOutcome {
        ProduceOutcome {
            error_code: code,
            error_message: message,
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        }
    }
}

pub struct ReadCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: u32,
    pub min_one: bool,
    /// When nothing is readable yet, the owner keeps this and sends `()` when the high
    /// watermark next moves (long-poll fetch).
    pub notify: Option<flume::Sender<()>>,
}

#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub slice: Option<ReadSlice>,
}

pub struct ListOffsetCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub timestamp: i64,
}

#[derive(Debug, Default)]
pub struct ListOffsetOutcome {
    pub error_code: i16,
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

impl std::fmt::Debug for ReadCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Read({}-{} @{})", self.topic, self.partition, self.offset)
    }
}
