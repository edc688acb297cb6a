//! The `consumer` protocol's subscription and assignment blobs (an int16 version, then the
//! schema), shared by group membership and `group describe`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use crate::error::{Error, Result};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn with_version<M: Encodable>(message: &M, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| Error::Invalid(format!("cannot encode consumer protocol: {e}")))?;
    Ok(buf.freeze())
}

/// A newer version than we know is read with the newest schema we have (Kafka's rule for
/// the consumer protocol: versions only append fields).
fn read_version<M: Message>(bytes: &mut Bytes) -> Result<i16> {
    if bytes.len() < 2 {
        return Err(Error::Invalid("consumer protocol blob shorter than its version".into()));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(Error::Invalid(format!("consumer protocol version {version}")));
    }
    Ok(version.min(M::VERSIONS.max))
}

pub fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let subscription =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    with_version(&subscription, 0)
}

pub fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>> {
    let mut bytes = bytes.clone();
    let version = read_version::<ConsumerProtocolSubscription>(&mut bytes)?;
    let sub = ConsumerProtocolSubscription::decode(&mut bytes, version)
        .map_err(|e| Error::Invalid(format!("bad subscription: {e}")))?;
    Ok(sub.topics.into_iter().map(|t| t.to_string()).collect())
}

pub fn encode_assignment(owned: &[(String, Vec<i32>)]) -> Result<Bytes> {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        owned
            .iter()
            .map(|(t, ps)| {
                AssignedPartitions::default().with_topic(TopicName(s(t))).with_partitions(ps.clone())
            })
            .collect(),
    );
    with_version(&assignment, 0)
}

/// An empty blob (a member not yet assigned) is an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut bytes = bytes.clone();
    let version = read_version::<ConsumerProtocolAssignment>(&mut bytes)?;
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map_err(|e| Error::Invalid(format!("bad assignment: {e}")))?;
    Ok(assignment.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect())
}
