//! ApiVersions, and the one table of what this broker implements. The table is the truth for
//! both the advertisement and the version check in `api::handle`: nothing is advertised that
//! is not handled.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{Chunk, Response};

/// (api, min version, max version) for every API this broker answers. The minimums are Kafka
/// 3.9's: versions Kafka 4.0 removed (KIP-896) are served through `legacy`'s bridges.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // v12: transactions v2 (KIP-890), the partitions join the transaction implicitly.
    (ApiKey::Produce, 0, 13),
    // v13+: topic ids (KIP-516); sessions (KIP-227) from v7.
    (ApiKey::Fetch, 0, 18),
    (ApiKey::ListOffsets, 0, 10),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::DescribeLogDirs, 0, 4),
    (ApiKey::Metadata, 0, 13),
    // KIP-966's paginated metadata (ELR lists empty: Riptide has no ELR).
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
    // Transactions v1 (KIP-98, KIP-447 fencing) and v2 (KIP-890: AddPartitionsToTxn v4+ are
    // broker-to-broker, EndTxn v5 bumps the epoch, TxnOffsetCommit v5 adds the offsets
    // partition itself), with the `transaction.version` feature finalized at 2 (`FEATURES`).
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 0, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Share groups (KIP-932) at Kafka 4.2's versions (v0 was 4.0's early access): ShareFetch
    // and ShareAcknowledge v2 add acquire modes and RENEW (KIP-1206, KIP-1222),
    // DescribeShareGroupOffsets v1 the lag (KIP-1226). Left out of ApiVersions when
    // `group.share.enable` is off.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    // Partition leaders to the share coordinator (broker to broker).
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 0),
    (ApiKey::DeleteShareGroupState, 0, 0),
    (ApiKey::DescribeShareGroupOffsets, 0, 1),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    // v0 is advertised because librdkafka looks for it before it uses SaslHandshake at all;
    // a v0 client then sends bare SASL tokens, which this broker does not read (v1 clients
    // use SaslAuthenticate: every client of the last seven years).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::PushTelemetry, 0, 0),
    (ApiKey::ListConfigResources, 0, 1),
];

/// Features (KIP-584) this broker supports, as (name, min, max), all finalized at their max:
/// clients read `transaction.version` 2 as "transactions v2 are on" (Kafka 4's default).
pub const FEATURES: &[(&str, i16, i16)] = &[("transaction.version", 0, 2)];

/// The finalized features' epoch: they never change while a broker runs.
const FEATURES_EPOCH: i64 = 1;

pub fn supported(key: i16) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k as i16 == key).map(|(_, min, max)| (*min, *max))
}

/// The share-group APIs (KIP-932), served only with `group.share.enable`.
pub fn is_share_api(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::ShareGroupHeartbeat
            | ApiKey::ShareGroupDescribe
            | ApiKey::ShareFetch
            | ApiKey::ShareAcknowledge
            | ApiKey::ReadShareGroupState
            | ApiKey::WriteShareGroupState
            | ApiKey::DeleteShareGroupState
            | ApiKey::DescribeShareGroupOffsets
            | ApiKey::AlterShareGroupOffsets
            | ApiKey::DeleteShareGroupOffsets
    )
}

pub fn handle(_request: ApiVersionsRequest, share_enabled: bool) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .filter(|(k, _, _)| share_enabled || !is_share_api(*k))
        .map(|(k, min, max)| {
            ApiVersion::default().with_api_key(*k as i16).with_min_version(*min).with_max_version(*max)
        })
        .collect();
    use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
    use kafka_protocol::protocol::StrBytes;
    let supported = FEATURES
        .iter()
        .map(|(name, min, max)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    let finalized = FEATURES
        .iter()
        .map(|(name, _, max)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version_level(*max)
                .with_max_version_level(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys)
        .with_supported_features(supported)
        .with_finalized_features_epoch(FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

/// The answer to an ApiVersions version we don't know: header v0, body v0, error 35 and our
/// ranges (KIP-511), hand-encoded because no newer schema applies.
pub fn unsupported_version_response(correlation_id: i32) -> Response {
    let mut buf = BytesMut::with_capacity(16 + SUPPORTED.len() * 6);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    buf.put_i16(ResponseError::UnsupportedVersion.code());
    buf.put_i32(SUPPORTED.len() as i32);
    for (k, min, max) in SUPPORTED {
        buf.put_i16(*k as i16);
        buf.put_i16(*min);
        buf.put_i16(*max);
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Response::new(vec![Chunk::Bytes(buf.freeze())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    /// Every advertised range must be one the codec can decode.
    #[test]
    fn advertised_ranges_are_within_the_codec() {
        use kafka_protocol::messages::*;
        fn within<T: Message>(min: i16, max: i16) -> bool {
            T::VERSIONS.min <= min && max <= T::VERSIONS.max
        }
        for (k, min, max) in SUPPORTED {
            // Older versions are bridged to one the codec knows (`legacy`).
            let min = &super::super::legacy::bridge(*k, *min).unwrap_or(*min);
            let ok = match k {
                ApiKey::Produce => within::<ProduceRequest>(*min, *max),
                ApiKey::Fetch => within::<FetchRequest>(*min, *max),
                ApiKey::ListOffsets => within::<ListOffsetsRequest>(*min, *max),
                ApiKey::DeleteRecords => within::<DeleteRecordsRequest>(*min, *max),
                ApiKey::DescribeTopicPartitions => within::<DescribeTopicPartitionsRequest>(*min, *max),
                ApiKey::OffsetForLeaderEpoch => within::<OffsetForLeaderEpochRequest>(*min, *max),
                ApiKey::DescribeLogDirs => within::<DescribeLogDirsRequest>(*min, *max),
                ApiKey::Metadata => within::<MetadataRequest>(*min, *max),
                ApiKey::ApiVersions => within::<ApiVersionsRequest>(*min, *max),
                ApiKey::CreateTopics => within::<CreateTopicsRequest>(*min, *max),
                ApiKey::DeleteTopics => within::<DeleteTopicsRequest>(*min, *max),
                ApiKey::InitProducerId => within::<InitProducerIdRequest>(*min, *max),
                ApiKey::AddPartitionsToTxn => within::<AddPartitionsToTxnRequest>(*min, *max),
                ApiKey::AddOffsetsToTxn => within::<AddOffsetsToTxnRequest>(*min, *max),
                ApiKey::EndTxn => within::<EndTxnRequest>(*min, *max),
                ApiKey::TxnOffsetCommit => within::<TxnOffsetCommitRequest>(*min, *max),
                ApiKey::WriteTxnMarkers => within::<WriteTxnMarkersRequest>(*min, *max),
                ApiKey::DescribeTransactions => within::<DescribeTransactionsRequest>(*min, *max),
                ApiKey::ListTransactions => within::<ListTransactionsRequest>(*min, *max),
                ApiKey::DescribeProducers => within::<DescribeProducersRequest>(*min, *max),
                ApiKey::DescribeConfigs => within::<DescribeConfigsRequest>(*min, *max),
                ApiKey::AlterConfigs => within::<AlterConfigsRequest>(*min, *max),
                ApiKey::CreatePartitions => within::<CreatePartitionsRequest>(*min, *max),
                ApiKey::IncrementalAlterConfigs => within::<IncrementalAlterConfigsRequest>(*min, *max),
                ApiKey::DescribeCluster => within::<DescribeClusterRequest>(*min, *max),
                ApiKey::DescribeQuorum => within::<DescribeQuorumRequest>(*min, *max),
                ApiKey::AddRaftVoter => within::<AddRaftVoterRequest>(*min, *max),
                ApiKey::RemoveRaftVoter => within::<RemoveRaftVoterRequest>(*min, *max),
                ApiKey::AlterPartitionReassignments => {
                    within::<AlterPartitionReassignmentsRequest>(*min, *max)
                }
                ApiKey::ListPartitionReassignments => within::<ListPartitionReassignmentsRequest>(*min, *max),
                ApiKey::ElectLeaders => within::<ElectLeadersRequest>(*min, *max),
                ApiKey::UnregisterBroker => within::<UnregisterBrokerRequest>(*min, *max),
                ApiKey::FindCoordinator => within::<FindCoordinatorRequest>(*min, *max),
                ApiKey::JoinGroup => within::<JoinGroupRequest>(*min, *max),
                ApiKey::SyncGroup => within::<SyncGroupRequest>(*min, *max),
                ApiKey::Heartbeat => within::<HeartbeatRequest>(*min, *max),
                ApiKey::LeaveGroup => within::<LeaveGroupRequest>(*min, *max),
                ApiKey::OffsetCommit => within::<OffsetCommitRequest>(*min, *max),
                ApiKey::OffsetFetch => within::<OffsetFetchRequest>(*min, *max),
                ApiKey::OffsetDelete => within::<OffsetDeleteRequest>(*min, *max),
                ApiKey::ListGroups => within::<ListGroupsRequest>(*min, *max),
                ApiKey::DescribeGroups => within::<DescribeGroupsRequest>(*min, *max),
                ApiKey::DeleteGroups => within::<DeleteGroupsRequest>(*min, *max),
                ApiKey::ConsumerGroupHeartbeat => within::<ConsumerGroupHeartbeatRequest>(*min, *max),
                ApiKey::ConsumerGroupDescribe => within::<ConsumerGroupDescribeRequest>(*min, *max),
                ApiKey::ShareGroupHeartbeat => within::<ShareGroupHeartbeatRequest>(*min, *max),
                ApiKey::ShareGroupDescribe => within::<ShareGroupDescribeRequest>(*min, *max),
                ApiKey::ShareFetch => within::<ShareFetchRequest>(*min, *max),
                ApiKey::ShareAcknowledge => within::<ShareAcknowledgeRequest>(*min, *max),
                ApiKey::ReadShareGroupState => within::<ReadShareGroupStateRequest>(*min, *max),
                ApiKey::WriteShareGroupState => within::<WriteShareGroupStateRequest>(*min, *max),
                ApiKey::DeleteShareGroupState => within::<DeleteShareGroupStateRequest>(*min, *max),
                ApiKey::DescribeShareGroupOffsets => within::<DescribeShareGroupOffsetsRequest>(*min, *max),
                ApiKey::AlterShareGroupOffsets => within::<AlterShareGroupOffsetsRequest>(*min, *max),
                ApiKey::DeleteShareGroupOffsets => within::<DeleteShareGroupOffsetsRequest>(*min, *max),
                ApiKey::SaslHandshake => within::<SaslHandshakeRequest>(*min, *max),
                ApiKey::SaslAuthenticate => within::<SaslAuthenticateRequest>(*min, *max),
                ApiKey::CreateAcls => within::<CreateAclsRequest>(*min, *max),
                ApiKey::DescribeAcls => within::<DescribeAclsRequest>(*min, *max),
                ApiKey::DeleteAcls => within::<DeleteAclsRequest>(*min, *max),
                ApiKey::DescribeUserScramCredentials => {
                    within::<DescribeUserScramCredentialsRequest>(*min, *max)
                }
                ApiKey::AlterUserScramCredentials => within::<AlterUserScramCredentialsRequest>(*min, *max),
                ApiKey::DescribeClientQuotas => within::<DescribeClientQuotasRequest>(*min, *max),
                ApiKey::AlterClientQuotas => within::<AlterClientQuotasRequest>(*min, *max),
                ApiKey::GetTelemetrySubscriptions => within::<GetTelemetrySubscriptionsRequest>(*min, *max),
                ApiKey::PushTelemetry => within::<PushTelemetryRequest>(*min, *max),
                ApiKey::ListConfigResources => within::<ListConfigResourcesRequest>(*min, *max),
                _ => false,
            };
            assert!(ok, "{k:?} {min}..={max}");
        }
    }
}
