//! Request dispatch: header parsing, version checks, one module per API family, response
//! framing. The `kafka-protocol` crate decodes and encodes control-plane messages; Fetch
//! responses are written by hand (`fetch`) so record bytes are never decoded.
//!
//! Below this layer: the group coordinator and the shard router (which reach partitions);
//! failures come back typed and become Kafka codes here (`error`).

pub mod admin;
pub mod cluster;
pub mod configs;
pub mod decode;
pub mod epochs;
pub mod error;
pub mod fetch;
pub mod group;
pub mod logdirs;
pub mod metadata;
pub mod offsets;
pub mod offsets_commit;
pub mod produce;
pub mod reassign;
pub mod versions;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use riptide_engine::ReadSlice;

use crate::broker::Broker;
use crate::coordinator::Coordinator;

/// What a request handler may use: its shard (to route to partitions), the broker's shared
/// state and the group coordinator.
pub struct ApiCtx {
    pub shard: crate::shard::Ctx,
    pub broker: Arc<Broker>,
    pub coordinator: Arc<Coordinator>,
}

pub type Ctx = Rc<ApiCtx>;

impl ApiCtx {
    pub fn new(shard: &crate::shard::Ctx, coordinator: Arc<Coordinator>) -> Ctx {
        Rc::new(ApiCtx { shard: shard.clone(), broker: shard.broker.clone(), coordinator })
    }
}

/// A piece of a response: encoded bytes, or a range of a segment file sent as is.
pub enum Chunk {
    Bytes(Bytes),
    File(ReadSlice),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(s) => s.len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete response frame, size prefix included.
pub struct Response {
    pub chunks: Vec<Chunk>,
}

/// Why a connection must be closed instead of answered (what Kafka does for these).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {1} of api {0}")]
    UnsupportedVersion(i16, i16),
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// Everything a handler needs to know about the request it answers.
pub struct RequestInfo {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    /// The client's address as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
}

pub async fn handle(
    ctx: Ctx,
    frame: Bytes,
    peer: std::net::IpAddr,
) -> Result<Option<Response>, RequestError> {
    let started = Instant::now();
    let (info, body) = match decode::parse_header(frame)? {
        decode::Parsed::Request(info, body) => {
            (RequestInfo { client_host: format!("/{peer}"), ..info }, body)
        }
        // KIP-511: answer in v0 so the client can pick a version we support.
        decode::Parsed::ApiVersionsFallback { correlation_id } => {
            return Ok(Some(versions::unsupported_version_response(correlation_id)));
        }
    };
    let key = info.api_key as i16;
    let result = dispatch(&ctx, &info, body).await;
    ctx.broker.metrics.record_request(key, started.elapsed().as_micros() as u64);
    result
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, RequestError> {
    T::decode(body, version).map_err(|e| RequestError::Malformed(e.to_string()))
}

async fn dispatch(ctx: &Ctx, info: &RequestInfo, mut body: Bytes) -> Result<Option<Response>, RequestError> {
    let v = info.version;
    macro_rules! answer {
        ($handler:expr) => {{
            let response = $handler;
            Ok(Some(encode(info, &response)?))
        }};
    }
    match info.api_key {
        ApiKey::ApiVersions => answer!(versions::handle(decode(&mut body, v)?)),
        ApiKey::Metadata => answer!(metadata::handle(ctx, info, decode(&mut body, v)?).await),
        ApiKey::Produce => {
            let Some(response) = produce::handle(ctx, v, decode(&mut body, v)?).await else {
                return Ok(None);
            };
            Ok(Some(encode(info, &response)?))
        }
        ApiKey::Fetch => fetch::handle(ctx, info, decode(&mut body, v)?).await.map(Some),
        ApiKey::ListOffsets => answer!(offsets::handle(ctx, info, decode(&mut body, v)?).await),
        ApiKey::OffsetForLeaderEpoch => answer!(epochs::handle(ctx, decode(&mut body, v)?).await),
        ApiKey::DescribeLogDirs => answer!(logdirs::handle(ctx, decode(&mut body, v)?).await),
        ApiKey::CreateTopics => answer!(admin::create_topics(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DeleteTopics => answer!(admin::delete_topics(ctx, v, decode(&mut body, v)?).await),
        ApiKey::CreatePartitions => answer!(admin::create_partitions(ctx, decode(&mut body, v)?).await),
        ApiKey::DescribeConfigs => answer!(configs::describe(ctx, info, decode(&mut body, v)?)),
        ApiKey::AlterConfigs => answer!(configs::alter(ctx, decode(&mut body, v)?).await),
        ApiKey::IncrementalAlterConfigs => {
            answer!(configs::incremental_alter(ctx, decode(&mut body, v)?).await)
        }
        ApiKey::InitProducerId => answer!(cluster::init_producer_id(ctx, decode(&mut body, v)?)),
        ApiKey::DescribeCluster => answer!(cluster::describe_cluster(ctx, decode(&mut body, v)?)),
        ApiKey::DescribeQuorum => answer!(cluster::describe_quorum(ctx, v, decode(&mut body, v)?).await),
        ApiKey::AddRaftVoter => answer!(cluster::add_raft_voter(ctx, decode(&mut body, v)?).await),
        ApiKey::RemoveRaftVoter => answer!(cluster::remove_raft_voter(ctx, decode(&mut body, v)?).await),
        ApiKey::AlterPartitionReassignments => answer!(reassign::alter(ctx, decode(&mut body, v)?).await),
        ApiKey::ListPartitionReassignments => answer!(reassign::list(ctx, decode(&mut body, v)?)),
        ApiKey::ElectLeaders => answer!(reassign::elect_leaders(ctx, v, decode(&mut body, v)?).await),
        ApiKey::UnregisterBroker => answer!(cluster::unregister_broker(ctx, decode(&mut body, v)?).await),
        ApiKey::FindCoordinator => answer!(group::find_coordinator(ctx, info, decode(&mut body, v)?).await),
        ApiKey::JoinGroup => answer!(group::join_group(ctx, info, decode(&mut body, v)?).await),
        ApiKey::SyncGroup => answer!(group::sync_group(ctx, info, decode(&mut body, v)?).await),
        ApiKey::Heartbeat => answer!(group::heartbeat(ctx, info, decode(&mut body, v)?)),
        ApiKey::LeaveGroup => answer!(group::leave_group(ctx, info, decode(&mut body, v)?)),
        ApiKey::ListGroups => answer!(group::list_groups(ctx, info, decode(&mut body, v)?)),
        ApiKey::DescribeGroups => answer!(group::describe_groups(ctx, info, decode(&mut body, v)?)),
        ApiKey::DeleteGroups => answer!(group::delete_groups(ctx, decode(&mut body, v)?).await),
        ApiKey::OffsetCommit => {
            answer!(offsets_commit::offset_commit(ctx, info, decode(&mut body, v)?).await)
        }
        ApiKey::OffsetFetch => answer!(offsets_commit::offset_fetch(ctx, info, decode(&mut body, v)?)),
        ApiKey::OffsetDelete => answer!(offsets_commit::offset_delete(ctx, decode(&mut body, v)?).await),
        ApiKey::ConsumerGroupHeartbeat => {
            answer!(group::consumer_group_heartbeat(ctx, info, decode(&mut body, v)?))
        }
        ApiKey::ConsumerGroupDescribe => {
            answer!(group::consumer_group_describe(ctx, info, decode(&mut body, v)?))
        }
        _ => Err(RequestError::UnknownApi(info.api_key as i16)),
    }
}

/// Frames a response: size, header (v0, or v1 with tagged fields), body.
pub fn encode<T: Encodable>(info: &RequestInfo, body: &T) -> Result<Response, RequestError> {
    let header_version = if info.api_key == ApiKey::ApiVersions {
        0 // ApiVersions answers always use header v0, even when the body is flexible
    } else {
        info.api_key.response_header_version(info.version)
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(info.header.correlation_id);
    header.encode(&mut buf, header_version).map_err(|e| encode_failed(info, e))?;
    body.encode(&mut buf, info.version).map_err(|e| encode_failed(info, e))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Response { chunks: vec![Chunk::Bytes(buf.freeze())] })
}

fn encode_failed(info: &RequestInfo, e: impl std::fmt::Display) -> RequestError {
    RequestError::Encode(format!("{:?} v{}: {e}", info.api_key, info.version))
}
