//! Request decoding without I/O or broker state: the header checks `handle` runs on every
//! frame, and the body decoder for every API in `versions::SUPPORTED`. Used by `handle` (the
//! header part) and by the fuzz targets and regression tests (both parts), so what is fuzzed is
//! what the broker runs on untrusted bytes.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::{legacy, versions, RequestError};

/// A request's header, checked.
pub struct Head {
    pub api_key: ApiKey,
    pub version: i16,
    /// The version the body is decoded (and the handler run) as: `version`, or for a version
    /// Kafka 4 removed, the one it is bridged to (`legacy`), the body already rewritten.
    pub decode_version: i16,
    pub header: RequestHeader,
}

/// A frame whose header has been checked.
pub enum Parsed {
    /// A supported API at a supported version; `body` follows the decoded header.
    Request(Head, Bytes),
    /// ApiVersions at a version we don't know: answered in v0 with our ranges (KIP-511).
    ApiVersionsFallback { correlation_id: i32 },
}

/// Checks the api key and version of a frame (size prefix removed) and decodes its header.
pub fn parse_header(frame: Bytes) -> Result<Parsed, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::Malformed(format!(
            "{} byte request is shorter than a header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some((min, max)) = versions::supported(key) else {
        return Err(RequestError::UnknownApi(key));
    };
    let api_key = ApiKey::try_from(key).map_err(|_| RequestError::UnknownApi(key))?;
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            return Ok(Parsed::ApiVersionsFallback { correlation_id });
        }
        return Err(RequestError::UnsupportedVersion(key, version));
    }
    let mut body = frame;
    let header_version = match legacy::bridge(api_key, version) {
        Some(_) => legacy::REQUEST_HEADER_VERSION,
        None => api_key.request_header_version(version),
    };
    let header = RequestHeader::decode(&mut body, header_version)
        .map_err(|e| RequestError::Malformed(format!("header: {e}")))?;
    let (decode_version, body) = match legacy::bridge(api_key, version) {
        Some(bridge) => (bridge, legacy::upgrade_request(api_key, version, body)?),
        None => (version, body),
    };
    Ok(Parsed::Request(Head { api_key, version, decode_version, header }, body))
}

/// The api key of a frame (size prefix removed), before anything is checked.
pub fn peek_api_key(frame: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes([*frame.first()?, *frame.get(1)?]))
}

/// The client id of a frame's header: a nullable int16-length string right after the
/// correlation id in every header version (`None` when null, cut short or not UTF-8).
pub fn peek_client_id(frame: &[u8]) -> Option<&str> {
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    let len = usize::try_from(len).ok()?;
    std::str::from_utf8(frame.get(10..10 + len)?).ok()
}

fn body<T: Decodable>(mut body: Bytes, version: i16) -> Result<(), RequestError> {
    T::decode(&mut body, version).map(drop).map_err(|e| RequestError::Malformed(e.to_string()))
}

/// Calls `$m! { Key => RequestType, ... }` with every API `dispatch` answers: one list for
/// the body decoder and the tests that encode a request of each kind.
macro_rules! with_request_types {
    ($m:ident) => {
        $m! {
            ApiVersions => ApiVersionsRequest,
            Metadata => MetadataRequest,
            Produce => ProduceRequest,
            Fetch => FetchRequest,
            ListOffsets => ListOffsetsRequest,
            DeleteRecords => DeleteRecordsRequest,
            DescribeTopicPartitions => DescribeTopicPartitionsRequest,
            OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
            DescribeLogDirs => DescribeLogDirsRequest,
            CreateTopics => CreateTopicsRequest,
            DeleteTopics => DeleteTopicsRequest,
            CreatePartitions => CreatePartitionsRequest,
            DescribeConfigs => DescribeConfigsRequest,
            AlterConfigs => AlterConfigsRequest,
            IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
            InitProducerId => InitProducerIdRequest,
            AddPartitionsToTxn => AddPartitionsToTxnRequest,
            AddOffsetsToTxn => AddOffsetsToTxnRequest,
            EndTxn => EndTxnRequest,
            TxnOffsetCommit => TxnOffsetCommitRequest,
            WriteTxnMarkers => WriteTxnMarkersRequest,
            DescribeTransactions => DescribeTransactionsRequest,
            ListTransactions => ListTransactionsRequest,
            DescribeProducers => DescribeProducersRequest,
            DescribeCluster => DescribeClusterRequest,
            DescribeQuorum => DescribeQuorumRequest,
            AddRaftVoter => AddRaftVoterRequest,
            RemoveRaftVoter => RemoveRaftVoterRequest,
            AlterPartitionReassignments => AlterPartitionReassignmentsRequest,
            ListPartitionReassignments => ListPartitionReassignmentsRequest,
            ElectLeaders => ElectLeadersRequest,
            UnregisterBroker => UnregisterBrokerRequest,
            FindCoordinator => FindCoordinatorRequest,
            JoinGroup => JoinGroupRequest,
            SyncGroup => SyncGroupRequest,
            Heartbeat => HeartbeatRequest,
            LeaveGroup => LeaveGroupRequest,
            ListGroups => ListGroupsRequest,
            DescribeGroups => DescribeGroupsRequest,
            DeleteGroups => DeleteGroupsRequest,
            OffsetCommit => OffsetCommitRequest,
            OffsetFetch => OffsetFetchRequest,
            OffsetDelete => OffsetDeleteRequest,
            ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
            ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
            ShareGroupHeartbeat => ShareGroupHeartbeatRequest,
            ShareGroupDescribe => ShareGroupDescribeRequest,
            ShareFetch => ShareFetchRequest,
            ShareAcknowledge => ShareAcknowledgeRequest,
            ReadShareGroupState => ReadShareGroupStateRequest,
            WriteShareGroupState => WriteShareGroupStateRequest,
            DeleteShareGroupState => DeleteShareGroupStateRequest,
            DescribeShareGroupOffsets => DescribeShareGroupOffsetsRequest,
            AlterShareGroupOffsets => AlterShareGroupOffsetsRequest,
            DeleteShareGroupOffsets => DeleteShareGroupOffsetsRequest,
            SaslHandshake => SaslHandshakeRequest,
            SaslAuthenticate => SaslAuthenticateRequest,
            CreateAcls => CreateAclsRequest,
            DescribeAcls => DescribeAclsRequest,
            DeleteAcls => DeleteAclsRequest,
            AlterUserScramCredentials => AlterUserScramCredentialsRequest,
            DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
            DescribeClientQuotas => DescribeClientQuotasRequest,
            AlterClientQuotas => AlterClientQuotasRequest,
            GetTelemetrySubscriptions => GetTelemetrySubscriptionsRequest,
            PushTelemetry => PushTelemetryRequest,
            ListConfigResources => ListConfigResourcesRequest,
        }
    };
}

/// Decodes the body into the type `dispatch` decodes it into, and drops it.
pub fn decode_body(info: &Head, b: Bytes) -> Result<(), RequestError> {
    let v = info.decode_version;
    macro_rules! arms {
        ($($key:ident => $ty:ty,)*) => {
            match info.api_key {
                $(ApiKey::$key => body::<$ty>(b, v),)*
                other => Err(RequestError::UnknownApi(other as i16)),
            }
        };
    }
    with_request_types!(arms)
}

/// The whole untrusted path of one frame short of the handlers: header, then body.
pub fn decode_frame(frame: Bytes) -> Result<(), RequestError> {
    match parse_header(frame)? {
        Parsed::Request(info, b) => decode_body(&info, b),
        Parsed::ApiVersionsFallback { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(key: i16, version: i16, body: &[u8]) -> Bytes {
        let mut f = Vec::new();
        f.extend_from_slice(&key.to_be_bytes());
        f.extend_from_slice(&version.to_be_bytes());
        f.extend_from_slice(&7i32.to_be_bytes());
        f.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        let flexible = ApiKey::try_from(key).map(|k| k.request_header_version(version) >= 2).unwrap_or(false);
        if flexible {
            f.push(0); // no tagged fields
        }
        f.extend_from_slice(body);
        Bytes::from(f)
    }

    /// `decode_body` knows every advertised API (no `UnknownApi` for a supported key).
    #[test]
    fn every_supported_api_has_a_body_decoder() {
        for (k, min, max) in versions::SUPPORTED {
            for v in *min..=*max {
                let r = decode_frame(frame(*k as i16, v, &[]));
                assert!(!matches!(r, Err(RequestError::UnknownApi(_))), "{k:?} v{v}");
            }
        }
    }

    /// Regression (fuzzing, issue 8): an array count of 2^31-1 in a 14-byte Metadata request
    /// made kafka-protocol 0.18 reserve 154 GB up front and abort the broker. With the patched
    /// codec (vendor/kafka-protocol) it is a decode error.
    #[test]
    fn huge_array_count_is_an_error_not_an_allocation() {
        const COUNT: &[u8] = &[0x7f, 0xff, 0xff, 0xff]; // int32 array length 2^31-1
        const COMPACT: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f]; // varint length 2^32-1
        let produce_v3 = [&[0xff, 0xff, 0, 1, 0, 0, 3, 0xe8][..], COUNT].concat();
        let produce_v9 = [&[0, 0, 1, 0, 0, 3, 0xe8][..], COMPACT].concat();
        let cases: [(i16, i16, &[u8]); 6] = [
            (3, 0, COUNT),       // Metadata topics
            (3, 12, COMPACT),    // Metadata topics, flexible
            (0, 3, &produce_v3), // Produce topic_data
            (0, 9, &produce_v9), // Produce topic_data, flexible
            (19, 2, COUNT),      // CreateTopics topics
            (20, 1, COUNT),      // DeleteTopics topic_names
        ];
        for (key, version, body) in cases {
            let r = decode_frame(frame(key, version, body));
            assert!(matches!(r, Err(RequestError::Malformed(_))), "api {key} v{version}");
        }
    }

    /// Encodes the default request of `key` at `version` as a whole frame (size prefix included).
    fn default_frame(key: ApiKey, version: i16) -> Bytes {
        use bytes::{BufMut, BytesMut};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("riptide-seed")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        macro_rules! arms {
            ($($k:ident => $ty:ty,)*) => {
                match key {
                    $(ApiKey::$k => <$ty>::default().encode(&mut buf, version).unwrap(),)*
                    other => panic!("{other:?} has no request type"),
                }
            };
        }
        with_request_types!(arms);
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.freeze()
    }

    /// The default request of every advertised API at every advertised version decodes. With
    /// RIPTIDE_WRITE_SEEDS=DIR the frames are also written there (fuzz corpus seeds, so every
    /// API and version is reached even where no captured client uses it).
    #[test]
    fn default_request_of_every_api_and_version_decodes() {
        let seeds = std::env::var_os("RIPTIDE_WRITE_SEEDS");
        for (k, min, max) in versions::SUPPORTED {
            // Versions bridged to a newer one have no codec of their own: `legacy`'s tests
            // decode hand-built requests of each.
            let min = legacy::bridge(*k, *min).unwrap_or(*min);
            for v in min..=*max {
                let frame = default_frame(*k, v);
                let r = decode_frame(frame.slice(4..));
                assert!(r.is_ok(), "{k:?} v{v}: {:?}", r.err());
                if let Some(dir) = &seeds {
                    std::fs::write(std::path::Path::new(dir).join(format!("default-{k:?}-v{v}")), &frame)
                        .unwrap();
                }
            }
        }
    }

    #[test]
    fn short_unknown_and_unsupported_frames_are_rejected() {
        assert!(matches!(decode_frame(Bytes::from_static(&[0, 3])), Err(RequestError::Malformed(_))));
        assert!(matches!(decode_frame(frame(999, 0, &[])), Err(RequestError::UnknownApi(999))));
        assert!(matches!(decode_frame(frame(0, 14, &[])), Err(RequestError::UnsupportedVersion(0, 14))));
        assert!(
            matches!(decode_frame(frame(0, 0, &[])), Err(RequestError::Malformed(_))),
            "Produce v0, no body"
        );
        assert!(decode_frame(frame(18, 99, &[])).is_ok(), "ApiVersions falls back to v0");
    }
}
