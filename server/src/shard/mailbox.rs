//! The messages shards send each other: bounded queues of [`ShardMsg`], one inbox per shard.
//!
//! A connection's shard sends work to a partition's owner shard and awaits the answer on a
//! one-shot channel. Everything in a message is `Send` (`Bytes`, `Arc<File>`), so no shard ever
//! touches another shard's state. Produce and Fetch send one message per owner shard per
//! request, not one per partition. Only [`super::router`] sends these.

use std::sync::Arc;

use bytes::Bytes;

use crate::partition::{
    Acks, AppendReply, EpochEndOffset, FollowReply, LeaderEpoch, ListedOffset, Offset, OffsetSpec, Origin,
    PartitionError, ProducerSummary, ReadResult, RecordsDeleted, ReplicaFetch, TxnMarker,
};

/// Capacity of each shard's inbox; senders wait (backpressure) when it is full.
pub const MAILBOX_CAPACITY: usize = 4096;

pub type ShardSender = flume::Sender<ShardMsg>;

pub enum ShardMsg {
    /// Appends for partitions this shard owns (from one request); each call answers itself.
    Produce(Vec<ProduceCall>),
    /// Reads for partitions this shard owns (from one request), answered together, tagged with
    /// the index the caller gave each call.
    Read(Vec<(usize, ReadCall)>, flume::Sender<Vec<(usize, ReadOutcome)>>),
    ListOffset(ListOffsetCall, flume::Sender<ListOffsetOutcome>),
    /// DeleteRecords on a partition: topic, partition, the new log start (-1: the high
    /// watermark), the live brokers (whose replicas count for the low watermark).
    DeleteRecords(Arc<str>, i32, Offset, Arc<[riptide_model::NodeId]>, flume::Sender<DeleteRecordsOutcome>),
    /// A partition's producers (DescribeProducers): topic, partition.
    Producers(Arc<str>, i32, flume::Sender<ProducersOutcome>),
    /// Close and delete every partition (of this many) of the topic that this shard owns.
    /// A deleted topic: name, topic id, partition count.
    DropTopic(Arc<str>, u128, i32, flume::Sender<()>),
    /// The topic's configs changed: reload them into open partitions.
    Reconfigure(Arc<str>),
    /// Follower work for partitions this shard owns (from one replica fetch response).
    Follow(Vec<FollowCall>),
    /// OffsetForLeaderEpoch lookups, answered together like `Read`.
    EpochEnd(Vec<(usize, EpochEndCall)>, flume::Sender<Vec<(usize, EpochEndOutcome)>>),
    /// Leaders, ISRs or replica sets changed in the applied metadata: take on the new roles.
    RolesChanged,
    /// Every open replica on this shard: (topic, partition, bytes on disk, offset lag).
    LogDirs(flume::Sender<Vec<ReplicaLog>>),
    /// Stop accepting, flush and close every partition, then reply.
    Shutdown(flume::Sender<()>),
}

pub struct ProduceCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub records: Bytes,
    /// `records` as received into a landing buffer, for the stage to take over.
    pub landed: Option<riptide_engine::io::direct::Landed>,
    /// Counts this call done when dropped (after the append): see `metrics::LandingMark`.
    pub mark: Option<crate::metrics::LandingMark>,
    pub origin: Origin,
    /// A transaction marker to append instead of `records` (the transaction coordinator's).
    pub marker: Option<TxnMarker>,
    pub acks: Acks,
    pub reply: AppendReply,
}

pub struct ReadCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: Offset,
    pub max_bytes: u32,
    pub min_one: bool,
    /// When nothing is readable yet, the owner keeps this and sends `()` when the high
    /// watermark next moves (long-poll fetch).
    pub notify: Option<flume::Sender<()>>,
    /// Set for a follower's fetch: it reads up to the log end and acknowledges its offset.
    pub replica: Option<ReplicaFetch>,
    /// isolation_level=READ_COMMITTED: read below the last stable offset only.
    pub read_committed: bool,
}

/// What a follower does with one of its partitions.
pub enum FollowOp {
    /// Where its log stands (before its first fetch from a leader).
    Position,
    /// Append the leader's batches (possibly none) and take its high watermark.
    Append { records: Bytes, leader_hw: Offset, leader_log_start: Offset },
    /// The leader said the logs diverge where this epoch ends.
    Truncate(EpochEndOffset),
    /// The leader's log starts past this log's end: restart there.
    RestartAt(Offset),
}

pub struct FollowCall {
    pub topic: Arc<str>,
    pub partition: i32,
    /// The leader epoch the follower fetched under: refused if the partition moved on.
    pub leader_epoch: LeaderEpoch,
    pub op: FollowOp,
    pub reply: FollowReply,
}

pub struct EpochEndCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub current_leader_epoch: LeaderEpoch,
    pub epoch: LeaderEpoch,
}

/// One replica's log as DescribeLogDirs reports it.
#[derive(Clone, Debug)]
pub struct ReplicaLog {
    pub topic: Arc<str>,
    pub partition: i32,
    pub size_bytes: u64,
    /// How far the log end is below the high watermark this replica knows (0 on a leader).
    pub offset_lag: i64,
    pub log_end_offset: Offset,
    pub leader: bool,
    pub traffic: crate::partition::Traffic,
}

/// Kafka's OffsetForLeaderEpoch answer.
pub type EpochEndOutcome = Result<EpochEndOffset, PartitionError>;

pub type ReadOutcome = Result<ReadResult, PartitionError>;

pub struct ListOffsetCall {
    pub topic: Arc<str>,
    pub partition: i32,
    pub spec: OffsetSpec,
}

pub type ListOffsetOutcome = Result<ListedOffset, PartitionError>;

/// DeleteRecords' answer: where the log start went, and the replicas' low watermark.
pub type DeleteRecordsOutcome = Result<RecordsDeleted, PartitionError>;

pub type ProducersOutcome = Result<Vec<ProducerSummary>, PartitionError>;

impl std::fmt::Debug for ReadCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Read({}-{} @{})", self.topic, self.partition, self.offset)
    }
}
