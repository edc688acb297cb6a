//! Why a partition operation failed, as a typed value. The API layer maps each variant to its
//! Kafka error code (`api::error`), once, at the edge; nothing below it knows the numbers.
//! What the log refused or failed at stays the engine's typed [`LogError`] up to that edge, so
//! the message a client sees is the cause as the log stated it (sizes, offsets, sequences).

use std::sync::Arc;

use riptide_engine::LogError;

/// A failed partition operation. `Clone` so one storage failure can answer every waiter.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("This server does not host this topic-partition.")]
    UnknownTopicOrPartition,
    /// A request (Fetch v13+) named a topic by an id this broker's metadata does not have.
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
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
    /// The log refused the request (a bad batch, an offset out of range, an idempotent
    /// producer out of sequence) or failed under it (storage).
    #[error("{0}")]
    Log(LogFailure),
    /// The topic's configs forbid the operation (DeleteRecords without `cleanup.policy`
    /// delete).
    #[error("{0}")]
    PolicyViolation(String),
    /// Storage this partition needs failed outside its log (a failed group commit, keys for
    /// encryption at rest); it is offline until the broker restarts.
    #[error("{0}")]
    Storage(String),
}

impl PartitionError {
    /// True when the environment (disk) failed rather than the request.
    pub fn is_storage(&self) -> bool {
        match self {
            PartitionError::Storage(_) => true,
            PartitionError::Log(e) => e.cause().is_storage(),
            _ => false,
        }
    }
}

impl From<LogError> for PartitionError {
    fn from(e: LogError) -> PartitionError {
        PartitionError::Log(LogFailure(Arc::new(e)))
    }
}

/// A [`LogError`], shared: the engine's error is not `Clone` (it may hold an `io::Error`),
/// and one failure answers every waiter of the partition.
#[derive(Clone, Debug)]
pub struct LogFailure(Arc<LogError>);

impl LogFailure {
    pub fn cause(&self) -> &LogError {
        &self.0
    }
}

impl std::fmt::Display for LogFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
