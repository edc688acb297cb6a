//! The expected failures of the group coordinator, each with its Kafka error code. A request that
//! fails one of these checks is answered with the code; nothing here is a bug or an I/O fault.

/// Why a group operation was refused. `code()` is what goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("unknown server error")]
    Unknown,
    #[error("this topic-partition does not exist")]
    UnknownTopicOrPartition,
    #[error("the offset metadata is too large")]
    OffsetMetadataTooLarge,
    #[error("the coordinator is loading groups and offsets")]
    LoadInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("this broker is not the coordinator of the group")]
    NotCoordinator,
    #[error("the generation id is not the group's current generation")]
    IllegalGeneration,
    #[error("the group's members support no common protocol")]
    InconsistentGroupProtocol,
    #[error("the group id is empty or invalid")]
    InvalidGroupId,
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the session timeout is outside the broker's allowed range")]
    InvalidSessionTimeout,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the offset commit could not be stored (too large)")]
    InvalidCommitOffsetSize,
    #[error("the request is invalid")]
    InvalidRequest,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("a new member must rejoin with the member id given")]
    MemberIdRequired,
    #[error("the static member was fenced by a newer instance with the same group.instance.id")]
    FencedInstanceId,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the member epoch is fenced")]
    FencedMemberEpoch,
    #[error("the instance id is still used by another member")]
    UnreleasedInstanceId,
    #[error("the assignor is not supported")]
    UnsupportedAssignor,
    #[error("the member epoch is not the member's current epoch")]
    StaleMemberEpoch,
    #[error("not authorized to access the group")]
    GroupAuthorizationFailed,
    #[error("not authorized to access the topic")]
    TopicAuthorizationFailed,
    #[error("not authorized for the transactional id")]
    TransactionalIdAuthorizationFailed,
    #[error("a transaction's offset for this partition is not yet committed or aborted")]
    UnstableOffsetCommit,
}

impl GroupError {
    /// What a failed write to `__consumer_offsets` means to the client (Kafka maps produce
    /// errors the same way, so clients retry or rediscover the coordinator).
    pub fn from_write_error(error: &crate::partition::PartitionError) -> GroupError {
        use crate::partition::PartitionError as P;
        match error {
            P::UnknownTopicOrPartition | P::NotEnoughReplicas(_) | P::NotEnoughReplicasAfterAppend(_) => {
                GroupError::CoordinatorNotAvailable
            }
            P::NotLeaderOrFollower | P::FencedLeaderEpoch(_) | P::UnknownLeaderEpoch(_) => {
                GroupError::NotCoordinator
            }
            P::Log(e) if matches!(e.cause(), riptide_engine::LogError::MessageTooLarge { .. }) => {
                GroupError::InvalidCommitOffsetSize
            }
            _ => GroupError::Unknown,
        }
    }
}
