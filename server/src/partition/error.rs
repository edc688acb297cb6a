//! Why a partition operation failed, as a typed value. The API layer maps each variant to its
//! Kafka error code (`api::error`), once, at the edge; nothing below it knows the numbers.

use riptide_engine::LogError;

/// A failed partition operation. `Clone` so one storage failure can answer every waiter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// The principal may not do this to the topic (ACLs); said before whether it exists.
    #[error("Not authorized to access topics: [Topic authorization failed.]")]
    TopicAuthorizationFailed,
    /// The owner shard stopped answering (shutdown): clients refresh metadata and retry.
    #[error("This server is not the leader for that topic-partition.")]
    NotLeaderOrFollower,
    /// acks=all and the ISR is smaller than `min.insync.replicas`: nothing was written.
    #[error("{0}")]
    NotEnoughReplicas(String),
    /// Written, but the ISR shrank below `min.insync.replicas` before it was replicated.
    #[error("{0}")]
    NotEnoughReplicasAfterAppend(String),
    /// The request's leader epoch is older than this replica's.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// The request's leader epoch is newer than this replica knows (its metadata lags).
    #[error("{0}")]
    UnknownLeaderEpoch(String),
    #[error("{0}")]
    CorruptMessage(String),
    #[error("{0}")]
    InvalidRecord(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("{0}")]
    OffsetOutOfRange(String),
    #[error("{0}")]
    InvalidTimestamp(String),
    #[error("{0}")]
    OutOfOrderSequence(String),
    #[error("{0}")]
    InvalidProducerEpoch(String),
    #[error("{0}")]
    UnknownProducerId(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// The disk failed under this partition; it is offline until the broker restarts.
    #[error("{0}")]
    Storage(String),
}

impl PartitionError {
    /// True when the environment (disk) failed rather than the request.
    pub fn is_storage(&self) -> bool {
        matches!(self, PartitionError::Storage(_))
    }
}

impl From<LogError> for PartitionError {
    fn from(e: LogError) -> PartitionError {
        let text = e.to_string();
        match e {
            LogError::CorruptMessage(_) => PartitionError::CorruptMessage(text),
            LogError::InvalidRecord(_) => PartitionError::InvalidRecord(text),
            LogError::MessageTooLarge { .. } => PartitionError::MessageTooLarge(text),
            LogError::OffsetOutOfRange { .. } => PartitionError::OffsetOutOfRange(text),
            LogError::InvalidTimestamp(_) => PartitionError::InvalidTimestamp(text),
            LogError::OutOfOrderSequence { .. } => PartitionError::OutOfOrderSequence(text),
            LogError::InvalidProducerEpoch { .. } => PartitionError::InvalidProducerEpoch(text),
            LogError::UnknownProducerId { .. } => PartitionError::UnknownProducerId(text),
            LogError::InvalidRequest(_) => PartitionError::InvalidRequest(text),
            LogError::Storage(_) | LogError::Poisoned(_) | LogError::Io(_) => PartitionError::Storage(text),
        }
    }
}
