//! The API edge's one mapping from typed failures to Kafka error codes (the codec crate's
//! `ResponseError` is the only table of numbers).

use kafka_protocol::ResponseError;

use crate::partition::PartitionError;

/// The Kafka error code for a partition operation's failure.
pub fn partition_code(e: &PartitionError) -> i16 {
    let code = match e {
        PartitionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        PartitionError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        PartitionError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower,
        PartitionError::NotEnoughReplicas(_) => ResponseError::NotEnoughReplicas,
        PartitionError::NotEnoughReplicasAfterAppend(_) => ResponseError::NotEnoughReplicasAfterAppend,
        PartitionError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch(_) => ResponseError::UnknownLeaderEpoch,
        PartitionError::CorruptMessage(_) => ResponseError::CorruptMessage,
        PartitionError::InvalidRecord(_) => ResponseError::InvalidRecord,
        PartitionError::MessageTooLarge(_) => ResponseError::MessageTooLarge,
        PartitionError::OffsetOutOfRange(_) => ResponseError::OffsetOutOfRange,
        PartitionError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        PartitionError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        PartitionError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        PartitionError::UnknownProducerId(_) => ResponseError::UnknownProducerId,
        PartitionError::InvalidRequest(_) => ResponseError::InvalidRequest,
        PartitionError::Storage(_) => ResponseError::KafkaStorageError,
    };
    code.code()
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

    /// The codes clients act on must not drift (docs/KAFKA-NOTES.md).
    #[test]
    fn partition_errors_map_to_kafka_codes() {
        let cases = [
            (PartitionError::UnknownTopicOrPartition, 3),
            (PartitionError::NotLeaderOrFollower, 6),
            (PartitionError::CorruptMessage(String::new()), 2),
            (PartitionError::NotEnoughReplicas(String::new()), 19),
            (PartitionError::NotEnoughReplicasAfterAppend(String::new()), 20),
            (PartitionError::FencedLeaderEpoch(String::new()), 74),
            (PartitionError::UnknownLeaderEpoch(String::new()), 75),
            (PartitionError::OffsetOutOfRange(String::new()), 1),
            (PartitionError::MessageTooLarge(String::new()), 10),
            (PartitionError::InvalidTimestamp(String::new()), 32),
            (PartitionError::InvalidRequest(String::new()), 42),
            (PartitionError::OutOfOrderSequence(String::new()), 45),
            (PartitionError::InvalidProducerEpoch(String::new()), 47),
            (PartitionError::Storage(String::new()), 56),
            (PartitionError::UnknownProducerId(String::new()), 59),
            (PartitionError::InvalidRecord(String::new()), 87),
        ];
        for (e, want) in cases {
            assert_eq!(partition_code(&e), want, "{e:?}");
        }
    }
}
