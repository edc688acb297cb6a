//! The API edge's one mapping from typed failures to Kafka error codes: one `ToKafka` impl per
//! domain error (the log, partition, group coordinator, controller, topic admin), and nothing
//! else in the server turns an error into a number (the codec crate's `ResponseError` is the
//! only table of numbers).

use kafka_protocol::ResponseError;
use riptide_engine::LogError;
use riptide_quorum::ControllerError;

use crate::broker::AdminError;
use crate::coordinator::GroupError;
use crate::partition::PartitionError;

/// A domain error as Kafka names it.
pub trait ToKafka {
    fn kafka(&self) -> ResponseError;

    fn code(&self) -> i16 {
        self.kafka().code()
    }
}

/// The code of an optional failure: 0 (NONE) when there is none.
pub fn code_of_opt<E: ToKafka>(error: Option<E>) -> i16 {
    error.map_or(0, |e| e.code())
}

impl ToKafka for PartitionError {
    fn kafka(&self) -> ResponseError {
        match self {
            PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            PartitionError::UnknownTopicId => ResponseError::UnknownTopicId,
            PartitionError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
            PartitionError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
            PartitionError::NotEnoughReplicas(_) => ResponseError::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend(_) => ResponseError::NotEnoughReplicasAfterAppend,
            PartitionError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
            PartitionError::UnknownLeaderEpoch(_) => ResponseError::UnknownLeaderEpoch,
            PartitionError::Log(e) => e.cause().kafka(),
            PartitionError::PolicyViolation(_) => ResponseError::PolicyViolation,
            PartitionError::Storage(_) => ResponseError::KafkaStorageError,
        }
    }
}

/// What the log refused or failed at (reaching the edge inside `PartitionError::Log`).
impl ToKafka for LogError {
    fn kafka(&self) -> ResponseError {
        use ResponseError as E;
        match self {
            LogError::CorruptMessage(_) => E::CorruptMessage,
            LogError::InvalidRecord(_) | LogError::InvalidRecords(_) => E::InvalidRecord,
            LogError::MessageTooLarge { .. } => E::MessageTooLarge,
            LogError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
            LogError::InvalidTimestamp(_) | LogError::InvalidRecordTimestamps(_) => E::InvalidTimestamp,
            LogError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber,
            LogError::InvalidProducerEpoch { .. } => E::InvalidProducerEpoch,
            LogError::CoordinatorFenced { .. } => E::TransactionCoordinatorFenced,
            LogError::InvalidRequest(_) => E::InvalidRequest,
            LogError::Storage(_) | LogError::Poisoned(_) | LogError::Io(_) => E::KafkaStorageError,
        }
    }
}

impl ToKafka for GroupError {
    fn kafka(&self) -> ResponseError {
        use ResponseError as E;
        match self {
            GroupError::Unknown => E::UnknownServerError,
            GroupError::GroupAuthorizationFailed => E::GroupAuthorizationFailed,
            GroupError::TopicAuthorizationFailed => E::TopicAuthorizationFailed,
            GroupError::TransactionalIdAuthorizationFailed => E::TransactionalIdAuthorizationFailed,
            GroupError::UnstableOffsetCommit => E::UnstableOffsetCommit,
            GroupError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
            GroupError::OffsetMetadataTooLarge => E::OffsetMetadataTooLarge,
            GroupError::LoadInProgress => E::CoordinatorLoadInProgress,
            GroupError::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
            GroupError::NotCoordinator => E::NotCoordinator,
            GroupError::IllegalGeneration => E::IllegalGeneration,
            GroupError::InconsistentGroupProtocol => E::InconsistentGroupProtocol,
            GroupError::InvalidGroupId => E::InvalidGroupId,
            GroupError::UnknownMemberId => E::UnknownMemberId,
            GroupError::InvalidSessionTimeout => E::InvalidSessionTimeout,
            GroupError::RebalanceInProgress => E::RebalanceInProgress,
            GroupError::InvalidCommitOffsetSize => E::InvalidCommitOffsetSize,
            GroupError::InvalidRequest => E::InvalidRequest,
            GroupError::NonEmptyGroup => E::NonEmptyGroup,
            GroupError::GroupIdNotFound => E::GroupIdNotFound,
            GroupError::GroupMaxSizeReached => E::GroupMaxSizeReached,
            GroupError::MemberIdRequired => E::MemberIdRequired,
            GroupError::FencedInstanceId => E::FencedInstanceId,
            GroupError::GroupSubscribedToTopic => E::GroupSubscribedToTopic,
            GroupError::FencedMemberEpoch => E::FencedMemberEpoch,
            GroupError::UnreleasedInstanceId => E::UnreleasedInstanceId,
            GroupError::UnsupportedAssignor => E::UnsupportedAssignor,
            GroupError::StaleMemberEpoch => E::StaleMemberEpoch,
        }
    }
}

/// A controller verdict, wherever a broker relays one (reassignments, elections, quorum
/// membership, DescribeQuorum). A controller that did not answer (or was not the active one
/// by the deadline) is a timeout to the client, who retries.
impl ToKafka for ControllerError {
    fn kafka(&self) -> ResponseError {
        use ResponseError as E;
        match self {
            ControllerError::NotController { .. } | ControllerError::Timeout => E::RequestTimedOut,
            ControllerError::TopicExists(_) => E::TopicAlreadyExists,
            ControllerError::UnknownTopic(_) => E::UnknownTopicOrPartition,
            ControllerError::InvalidPartitions(_) => E::InvalidPartitions,
            ControllerError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor,
            ControllerError::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment,
            ControllerError::PolicyViolation(_) => E::PolicyViolation,
            ControllerError::InvalidRequest(_) => E::InvalidRequest,
            ControllerError::StaleBrokerEpoch(_) => E::StaleBrokerEpoch,
            ControllerError::DuplicateBrokerRegistration(_) => E::DuplicateBrokerRegistration,
            ControllerError::FencedLeaderEpoch(_) => E::FencedLeaderEpoch,
            ControllerError::InvalidUpdateVersion(_) => E::InvalidUpdateVersion,
            ControllerError::IneligibleReplica(_) => E::IneligibleReplica,
            ControllerError::NotLeader(_) => E::NotLeaderOrFollower,
            ControllerError::NoReassignmentInProgress(_) => E::NoReassignmentInProgress,
            ControllerError::BrokerIdNotRegistered(_) => E::BrokerIdNotRegistered,
            ControllerError::ElectionNotNeeded(_) => E::ElectionNotNeeded,
            ControllerError::PreferredLeaderNotAvailable(_) => E::PreferredLeaderNotAvailable,
            ControllerError::EligibleLeadersNotAvailable(_) => E::EligibleLeadersNotAvailable,
            ControllerError::Internal(_) => E::UnknownServerError,
        }
    }
}

impl ToKafka for AdminError {
    fn kafka(&self) -> ResponseError {
        match self {
            AdminError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            AdminError::TopicExists(_) => ResponseError::TopicAlreadyExists,
            AdminError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            AdminError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            AdminError::InvalidConfig(_) => ResponseError::InvalidConfig,
            AdminError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            AdminError::PolicyViolation(_) => ResponseError::PolicyViolation,
            AdminError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
            AdminError::Storage(_) => ResponseError::KafkaStorageError,
            AdminError::Timeout => ResponseError::RequestTimedOut,
            AdminError::Unknown(_) => ResponseError::UnknownServerError,
        }
    }
}

/// The Kafka error code for a partition operation's failure.
pub fn partition_code(e: &PartitionError) -> i16 {
    e.code()
}

/// The code of an optional failure: 0 (NONE) when there is none.
pub fn code_of<T>(result: &Result<T, PartitionError>) -> i16 {
    result.as_ref().err().map_or(0, partition_code)
}

/// Shorthand for the codes the handlers answer themselves.
pub fn code(e: ResponseError) -> i16 {
    e.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_model::{Offset, ProducerEpoch, ProducerId};

    /// The codes clients act on must not drift (docs/KAFKA-NOTES.md).
    #[test]
    fn partition_errors_map_to_kafka_codes() {
        let log = |e: LogError| PartitionError::from(e);
        let cases = [
            (PartitionError::UnknownTopicOrPartition, 3),
            (PartitionError::UnknownTopicId, 100),
            (PartitionError::NotLeaderOrFollower, 6),
            (log(LogError::CorruptMessage("crc")), 2),
            (PartitionError::NotEnoughReplicas(String::new()), 19),
            (PartitionError::NotEnoughReplicasAfterAppend(String::new()), 20),
            (PartitionError::FencedLeaderEpoch(String::new()), 74),
            (PartitionError::UnknownLeaderEpoch(String::new()), 75),
            (
                log(LogError::OffsetOutOfRange {
                    offset: Offset(9),
                    log_start_offset: Offset(0),
                    log_end_offset: Offset(5),
                }),
                1,
            ),
            (log(LogError::MessageTooLarge { size_bytes: 2, limit_bytes: 1 }), 10),
            (log(LogError::InvalidTimestamp("old")), 32),
            (log(LogError::InvalidRequest("empty")), 42),
            (
                log(LogError::OutOfOrderSequence { producer_id: ProducerId(1), expected_seq: 2, got_seq: 3 }),
                45,
            ),
            (
                log(LogError::InvalidProducerEpoch {
                    producer_id: ProducerId(1),
                    got_epoch: ProducerEpoch(0),
                    current_epoch: ProducerEpoch(1),
                }),
                47,
            ),
            (PartitionError::Storage(String::new()), 56),
            (log(LogError::Io(std::io::Error::other("disk"))), 56),
            (log(LogError::Poisoned(String::new())), 56),
            (log(LogError::InvalidRecord("count")), 87),
            (
                log(LogError::InvalidRecords(vec![riptide_engine::RecordError {
                    batch_index: 3,
                    problem: riptide_engine::RecordProblem::NoKeyOnCompactedTopic,
                }])),
                87,
            ),
            (
                log(LogError::InvalidRecordTimestamps(vec![riptide_engine::RecordError {
                    batch_index: 0,
                    problem: riptide_engine::RecordProblem::TimestampOutOfRange {
                        timestamp_ms: 1,
                        earliest_ms: 2,
                        latest_ms: 3,
                    },
                }])),
                32,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(partition_code(&e), want, "{e:?}");
        }
    }

    /// The log's typed fields reach the client's message (Produce v8+ error_message) as the
    /// log stated them, not a generic text.
    #[test]
    fn a_log_failure_keeps_its_cause_to_the_edge() {
        let e =
            PartitionError::from(LogError::MessageTooLarge { size_bytes: 2_000_000, limit_bytes: 1_048_588 });
        assert_eq!(e.to_string(), "message too large: 2000000 bytes, limit 1048588");
        let PartitionError::Log(failure) = &e else { panic!("{e:?}") };
        assert!(matches!(failure.cause(), LogError::MessageTooLarge { size_bytes: 2_000_000, .. }));
        assert!(!e.is_storage());
        assert!(PartitionError::from(LogError::Poisoned("fsync".into())).is_storage());
    }

    /// DescribeQuorum, the voter APIs, reassignments and elections answered the same
    /// controller error differently; now one table serves them all.
    #[test]
    fn controller_and_admin_errors_map_once() {
        let cases = [
            (ControllerError::Timeout, 7),
            (ControllerError::NotController { leader: None }, 7),
            (ControllerError::InvalidRequest(String::new()), 42),
            (ControllerError::UnknownTopic(String::new()), 3),
            (ControllerError::TopicExists(String::new()), 36),
            (ControllerError::InvalidReplicaAssignment(String::new()), 39),
            (ControllerError::BrokerIdNotRegistered(4), 102),
            (ControllerError::StaleBrokerEpoch(4), 77),
            (ControllerError::NotLeader(String::new()), 6),
            (ControllerError::Internal(String::new()), -1),
        ];
        for (e, want) in cases {
            assert_eq!(e.code(), want, "{e:?}");
        }
        assert_eq!(AdminError::from(ControllerError::Timeout).code(), 7);
        assert_eq!(AdminError::UnknownTopic.code(), 3);
        assert_eq!(code_of_opt(Some(GroupError::NotCoordinator)), 16);
        assert_eq!(code_of_opt(None::<GroupError>), 0);
    }
}
