//! Request dispatch: header parsing, version checks, one module per API family, response
//! framing. The `kafka-protocol` crate decodes and encodes control-plane messages; Fetch
//! responses are written by hand (`fetch`) so record bytes are never decoded.
//!
//! Below this layer: the group coordinator and the shard router (which reach partitions);
//! failures come back typed and become Kafka codes here (`error`).

pub mod acls;
pub mod admin;
pub mod cluster;
pub mod configs;
pub mod decode;
pub mod delete_records;
pub mod epochs;
pub mod error;
pub mod fetch;
pub mod fetch_session;
pub mod group;
pub mod landing;
pub mod leader_hint;
pub mod legacy;
pub mod logdirs;
pub mod metadata;
pub mod offsets;
pub mod offsets_commit;
pub mod produce;
pub mod quotas;
pub mod reassign;
pub mod sasl;
pub mod share;
pub mod telemetry;
pub mod topic_partitions;
pub mod txn;
pub mod users;
pub mod versions;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    create_acls_response, delete_acls_response, AddRaftVoterResponse, AlterPartitionReassignmentsResponse,
    AlterUserScramCredentialsRequest, ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsResponse,
    DescribeClusterResponse, DescribeLogDirsResponse, DescribeQuorumResponse,
    DescribeUserScramCredentialsResponse, ElectLeadersResponse, HeartbeatRequest, HeartbeatResponse,
    InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListPartitionReassignmentsResponse, OffsetDeleteRequest, OffsetDeleteResponse, RemoveRaftVoterResponse,
    RequestHeader, ResponseHeader, SyncGroupRequest, SyncGroupResponse, UnregisterBrokerResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use riptide_engine::ReadSlice;

use crate::broker::Broker;
use crate::coordinator::txn::TxnCoordinator;
use crate::coordinator::Coordinator;
use crate::security::acl::{op, resource, CLUSTER_NAME};
use crate::security::Session;

/// What a request handler may use: its shard (to route to partitions), the broker's shared
/// state and the group coordinator.
pub struct ApiCtx {
    pub shard: crate::shard::Ctx,
    pub broker: Arc<Broker>,
    pub coordinator: Arc<Coordinator>,
    pub txn: Arc<TxnCoordinator>,
    /// The broker's fetch sessions (KIP-227), shared by every shard.
    pub fetch_sessions: Arc<fetch_session::FetchSessionCache>,
    /// Share groups' state at this leader (KIP-932).
    pub shares: Arc<crate::coordinator::shares::Shares>,
}

pub type Ctx = Rc<ApiCtx>;

impl ApiCtx {
    pub fn new(
        shard: &crate::shard::Ctx,
        coordinator: Arc<Coordinator>,
        txn: Arc<TxnCoordinator>,
        fetch_sessions: Arc<fetch_session::FetchSessionCache>,
        shares: Arc<crate::coordinator::shares::Shares>,
    ) -> Ctx {
        Rc::new(ApiCtx {
            shard: shard.clone(),
            broker: shard.broker.clone(),
            coordinator,
            txn,
            fetch_sessions,
            shares,
        })
    }

    /// May the request's principal do `operation` on the resource (ACLs and `super.users`;
    /// everything when no authorizer is configured)?
    pub fn allowed(&self, info: &RequestInfo, operation: i8, resource_type: i8, name: &str) -> bool {
        let authorizer = &self.broker.security.authorizer;
        if !authorizer.enabled {
            return true;
        }
        let acls = self.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).acls.clone();
        let session = &info.session;
        authorizer.allows(&acls, &session.principal(), &session.host(), operation, resource_type, name)
    }

    pub fn allowed_on_cluster(&self, info: &RequestInfo, operation: i8) -> bool {
        self.allowed(info, operation, resource::CLUSTER, CLUSTER_NAME)
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
    /// Close the connection once this is sent (a failed SASL login).
    pub close: bool,
}

impl Response {
    pub fn new(chunks: Vec<Chunk>) -> Response {
        Response { chunks, close: false }
    }
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
    /// Not allowed in the connection's SASL state (before authentication, after expiry).
    #[error("{0}")]
    Sasl(String),
}

/// Everything a handler needs to know about the request it answers.
pub struct RequestInfo {
    pub api_key: ApiKey,
    pub version: i16,
    /// The version the body was decoded as and the answer is encoded as before it is
    /// rewritten for `version` (see `legacy`); `version` itself for every current version.
    pub decode_version: i16,
    pub header: RequestHeader,
    /// The client's address as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
    /// Who sent it, on which listener.
    pub session: Rc<Session>,
    /// The client-quota throttle this request earned as it was read (a Produce's).
    pub throttle: std::time::Duration,
}

impl RequestInfo {
    /// The client id the header names ("" when none, as Kafka's quotas take it).
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// The throttle a fetch of `bytes` earns its client (`owed`: the one it already had, when it
/// was answered without records). The connection is not read for that long (KIP-219:
/// clients from Fetch v8 also wait on the answer's `throttle_time_ms`). In ms, for the answer.
pub fn fetch_throttle(
    broker: &Broker,
    info: &RequestInfo,
    bytes: u64,
    owed: Option<std::time::Duration>,
) -> i32 {
    let kind = crate::quota::Kind::Fetch;
    let d = owed.unwrap_or_else(|| {
        broker.quotas.record(kind, &info.session.quota_user(), info.client_id(), bytes, Instant::now())
    });
    info.session.throttle(d);
    count_throttle(broker, kind, d)
}

/// A Produce frame's throttle: its size counted against its client's produce quota (zero for
/// any other request, and when no quota is set).
/// `size`: the frame's size as received (a landed frame's record set is kept apart).
pub fn produce_throttle(
    broker: &Broker,
    frame: &Bytes,
    size: usize,
    session: &Session,
) -> std::time::Duration {
    if !broker.quotas.active() || decode::peek_api_key(frame) != Some(ApiKey::Produce as i16) {
        return std::time::Duration::ZERO;
    }
    let client_id = decode::peek_client_id(frame).unwrap_or("");
    let kind = crate::quota::Kind::Produce;
    let d = broker.quotas.record(kind, &session.quota_user(), client_id, size as u64, Instant::now());
    count_throttle(broker, kind, d);
    d
}

fn count_throttle(broker: &Broker, kind: crate::quota::Kind, d: std::time::Duration) -> i32 {
    if d.is_zero() {
        return 0;
    }
    let m = &broker.metrics;
    let (count, ms) = match kind {
        crate::quota::Kind::Produce => (&m.produce_throttled, &m.produce_throttle_ms),
        crate::quota::Kind::Fetch => (&m.fetch_throttled, &m.fetch_throttle_ms),
    };
    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ms.fetch_add(d.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    d.as_millis().min(i32::MAX as u128) as i32
}

/// `landed`: a Produce frame's record set, received apart into a landing buffer
/// (`landing`); `frame` then holds an empty set in its place. `mark`: see
/// `metrics::LandingMark` (a one-partition Produce the reader follows).
pub async fn handle(
    ctx: Ctx,
    frame: Bytes,
    landed: Option<riptide_engine::io::direct::Landed>,
    mark: Option<crate::metrics::LandingMark>,
    session: Rc<Session>,
    throttle: std::time::Duration,
) -> Result<Option<Response>, RequestError> {
    let started = Instant::now();
    let (info, body) = match decode::parse_header(frame)? {
        decode::Parsed::Request(head, body) => {
            session.gate(head.api_key).map_err(RequestError::Sasl)?;
            let info = RequestInfo {
                api_key: head.api_key,
                version: head.version,
                decode_version: head.decode_version,
                header: head.header,
                client_host: session.client_host.clone(),
                session,
                throttle,
            };
            (info, body)
        }
        // KIP-511: answer in v0 so the client can pick a version we support.
        decode::Parsed::ApiVersionsFallback { correlation_id } => {
            return Ok(Some(versions::unsupported_version_response(correlation_id)));
        }
    };
    let key = info.api_key as i16;
    let result = dispatch(&ctx, &info, body, landed, mark).await;
    ctx.broker.metrics.record_request(key, started.elapsed().as_micros() as u64);
    result
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, RequestError> {
    T::decode(body, version).map_err(|e| RequestError::Malformed(e.to_string()))
}

async fn dispatch(
    ctx: &Ctx,
    info: &RequestInfo,
    mut body: Bytes,
    landed: Option<riptide_engine::io::direct::Landed>,
    mark: Option<crate::metrics::LandingMark>,
) -> Result<Option<Response>, RequestError> {
    let v = info.decode_version;
    macro_rules! answer {
        ($handler:expr) => {{
            let response = $handler;
            Ok(Some(encode(info, &response)?))
        }};
    }
    // APIs that act on the whole cluster: refused as a whole (Kafka's CLUSTER resource).
    macro_rules! cluster_gate {
        ($op:expr, $response:ty) => {
            if !ctx.allowed_on_cluster(info, $op) {
                return Ok(Some(encode(info, &<$response>::default().with_error_code(CLUSTER_DENIED))?));
            }
        };
    }
    // APIs on one group: refused as a whole with GROUP_AUTHORIZATION_FAILED.
    macro_rules! group_gate {
        ($op:expr, $group:expr, $response:expr) => {
            if !ctx.allowed(info, $op, resource::GROUP, &$group) {
                return Ok(Some(encode(info, &$response.with_error_code(GROUP_DENIED))?));
            }
        };
    }
    if versions::is_share_api(info.api_key) && !ctx.shares.cfg.enabled {
        return Err(RequestError::UnknownApi(info.api_key as i16));
    }
    match info.api_key {
        ApiKey::DescribeCluster => cluster_gate!(op::DESCRIBE, DescribeClusterResponse),
        ApiKey::DescribeQuorum => cluster_gate!(op::DESCRIBE, DescribeQuorumResponse),
        ApiKey::AddRaftVoter => cluster_gate!(op::ALTER, AddRaftVoterResponse),
        ApiKey::RemoveRaftVoter => cluster_gate!(op::ALTER, RemoveRaftVoterResponse),
        ApiKey::AlterPartitionReassignments => cluster_gate!(op::ALTER, AlterPartitionReassignmentsResponse),
        ApiKey::ListPartitionReassignments => cluster_gate!(op::DESCRIBE, ListPartitionReassignmentsResponse),
        ApiKey::ElectLeaders => cluster_gate!(op::ALTER, ElectLeadersResponse),
        ApiKey::UnregisterBroker => cluster_gate!(op::ALTER, UnregisterBrokerResponse),
        ApiKey::DescribeLogDirs => cluster_gate!(op::DESCRIBE, DescribeLogDirsResponse),
        ApiKey::JoinGroup => {
            let request: JoinGroupRequest = decode(&mut body.clone(), v)?;
            group_gate!(op::READ, request.group_id.0, JoinGroupResponse::default().with_generation_id(-1));
        }
        ApiKey::SyncGroup => {
            let request: SyncGroupRequest = decode(&mut body.clone(), v)?;
            group_gate!(op::READ, request.group_id.0, SyncGroupResponse::default());
        }
        ApiKey::Heartbeat => {
            let request: HeartbeatRequest = decode(&mut body.clone(), v)?;
            group_gate!(op::READ, request.group_id.0, HeartbeatResponse::default());
        }
        ApiKey::LeaveGroup => {
            let request: LeaveGroupRequest = decode(&mut body.clone(), v)?;
            group_gate!(op::READ, request.group_id.0, LeaveGroupResponse::default());
        }
        ApiKey::OffsetDelete => {
            let request: OffsetDeleteRequest = decode(&mut body.clone(), v)?;
            group_gate!(op::DELETE, request.group_id.0, OffsetDeleteResponse::default());
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let request: ConsumerGroupHeartbeatRequest = decode(&mut body.clone(), v)?;
            group_gate!(op::READ, request.group_id.0, ConsumerGroupHeartbeatResponse::default());
        }
        ApiKey::ShareGroupHeartbeat => {
            let request: kafka_protocol::messages::ShareGroupHeartbeatRequest = decode(&mut body.clone(), v)?;
            group_gate!(
                op::READ,
                request.group_id.0,
                kafka_protocol::messages::ShareGroupHeartbeatResponse::default().with_member_epoch(-1)
            );
        }
        // A transactional producer is authorized by WRITE on its transactional id (below).
        ApiKey::InitProducerId if !is_transactional_init(&body, v) && !may_write_idempotently(ctx, info) => {
            let denied = InitProducerIdResponse::default()
                .with_error_code(CLUSTER_DENIED)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1);
            return Ok(Some(encode(info, &denied)?));
        }
        _ => {}
    }
    match info.api_key {
        ApiKey::ApiVersions => {
            let request: kafka_protocol::messages::ApiVersionsRequest = decode(&mut body, v)?;
            if v >= 3 {
                let (name, version) = (&request.client_software_name, &request.client_software_version);
                info.session.set_client_software(name, version);
            }
            answer!(versions::handle(request, ctx.shares.cfg.enabled))
        }
        ApiKey::GetTelemetrySubscriptions => {
            answer!(telemetry::subscriptions(&ctx.broker, info, decode(&mut body, v)?))
        }
        ApiKey::ListConfigResources => answer!(configs::list_resources(ctx, info, decode(&mut body, v)?)),
        ApiKey::PushTelemetry => answer!(telemetry::push(&ctx.broker, info, decode(&mut body, v)?)),
        ApiKey::SaslHandshake => answer!(sasl::handshake(ctx, &info.session, v, decode(&mut body, v)?)),
        ApiKey::SaslAuthenticate => {
            let (response, close) = sasl::authenticate(ctx, &info.session, v, decode(&mut body, v)?).await;
            let mut framed = encode(info, &response)?;
            framed.close = close;
            Ok(Some(framed))
        }
        ApiKey::CreateAcls => {
            let request: CreateAclsRequest = decode(&mut body, v)?;
            if !ctx.allowed_on_cluster(info, op::ALTER) {
                let denied = request.creations.iter().map(|_| denied_acl_creation()).collect();
                return Ok(Some(encode(info, &CreateAclsResponse::default().with_results(denied))?));
            }
            answer!(acls::create(ctx, request).await)
        }
        ApiKey::DescribeAcls => {
            if !ctx.allowed_on_cluster(info, op::DESCRIBE) {
                return Ok(Some(encode(
                    info,
                    &DescribeAclsResponse::default().with_error_code(CLUSTER_DENIED),
                )?));
            }
            answer!(acls::describe(ctx, decode(&mut body, v)?))
        }
        ApiKey::DeleteAcls => {
            let request: DeleteAclsRequest = decode(&mut body, v)?;
            if !ctx.allowed_on_cluster(info, op::ALTER) {
                let denied = request.filters.iter().map(|_| denied_acl_filter()).collect();
                return Ok(Some(encode(info, &DeleteAclsResponse::default().with_filter_results(denied))?));
            }
            answer!(acls::delete(ctx, request).await)
        }
        ApiKey::AlterUserScramCredentials => {
            let request: AlterUserScramCredentialsRequest = decode(&mut body, v)?;
            if !ctx.allowed_on_cluster(info, op::ALTER) {
                return Ok(Some(encode(info, &users::denied(request))?));
            }
            answer!(users::alter(ctx, request).await)
        }
        ApiKey::DescribeUserScramCredentials => {
            if !ctx.allowed_on_cluster(info, op::DESCRIBE) {
                let denied = DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER_DENIED);
                return Ok(Some(encode(info, &denied)?));
            }
            answer!(users::describe(ctx, decode(&mut body, v)?))
        }
        ApiKey::DescribeClientQuotas => answer!(quotas::describe(ctx, info, decode(&mut body, v)?)),
        ApiKey::AlterClientQuotas => answer!(quotas::alter(ctx, info, decode(&mut body, v)?).await),
        ApiKey::Metadata => answer!(metadata::handle(ctx, info, decode(&mut body, v)?).await),
        ApiKey::Produce => {
            let Some(response) = produce::handle(ctx, info, decode(&mut body, v)?, landed, mark).await else {
                return Ok(None); // acks=0: no answer (the connection is throttled all the same)
            };
            let throttle_ms = info.throttle.as_millis().min(i32::MAX as u128) as i32;
            Ok(Some(encode(info, &response.with_throttle_time_ms(throttle_ms))?))
        }
        ApiKey::Fetch => fetch::handle(ctx, info, decode(&mut body, v)?).await.map(Some),
        ApiKey::ListOffsets => answer!(offsets::handle(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DeleteRecords => answer!(delete_records::handle(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DescribeTopicPartitions => {
            let request = decode(&mut body, v)?;
            answer!(topic_partitions::handle(ctx, info, &request)
                .unwrap_or_else(|e| topic_partitions::refused(&request, &e)))
        }
        ApiKey::OffsetForLeaderEpoch => answer!(epochs::handle(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DescribeLogDirs => answer!(logdirs::handle(ctx, decode(&mut body, v)?).await),
        ApiKey::CreateTopics => answer!(admin::create_topics(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DeleteTopics => answer!(admin::delete_topics(ctx, info, decode(&mut body, v)?).await),
        ApiKey::CreatePartitions => answer!(admin::create_partitions(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DescribeConfigs => answer!(configs::describe(ctx, info, decode(&mut body, v)?)),
        ApiKey::AlterConfigs => answer!(configs::alter(ctx, info, decode(&mut body, v)?).await),
        ApiKey::IncrementalAlterConfigs => {
            answer!(configs::incremental_alter(ctx, info, decode(&mut body, v)?).await)
        }
        ApiKey::InitProducerId => {
            let request: kafka_protocol::messages::InitProducerIdRequest = decode(&mut body, v)?;
            match request.transactional_id.as_ref().map(|t| t.0.to_string()) {
                Some(tid) => answer!(txn::init_producer_id(ctx, info, &tid, &request).await),
                None => answer!(cluster::init_producer_id(ctx, request)),
            }
        }
        ApiKey::AddPartitionsToTxn => answer!(txn::add_partitions(ctx, info, decode(&mut body, v)?).await),
        ApiKey::AddOffsetsToTxn => answer!(txn::add_offsets(ctx, info, decode(&mut body, v)?).await),
        ApiKey::EndTxn => answer!(txn::end_txn(ctx, info, decode(&mut body, v)?).await),
        ApiKey::TxnOffsetCommit => answer!(txn::txn_offset_commit(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DescribeTransactions => answer!(txn::describe_transactions(ctx, info, decode(&mut body, v)?)),
        ApiKey::ListTransactions => answer!(txn::list_transactions(ctx, info, decode(&mut body, v)?)),
        ApiKey::DescribeProducers => answer!(txn::describe_producers(ctx, info, decode(&mut body, v)?).await),
        ApiKey::WriteTxnMarkers => {
            let allowed = ctx.allowed_on_cluster(info, op::CLUSTER_ACTION);
            answer!(txn::write_txn_markers(ctx, allowed, decode(&mut body, v)?).await)
        }
        ApiKey::DescribeCluster => answer!(cluster::describe_cluster(ctx, info, decode(&mut body, v)?)),
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
        ApiKey::DeleteGroups => answer!(group::delete_groups(ctx, info, decode(&mut body, v)?).await),
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
        ApiKey::ShareGroupHeartbeat => answer!(share::heartbeat(ctx, info, decode(&mut body, v)?)),
        ApiKey::ShareGroupDescribe => answer!(share::describe(ctx, info, decode(&mut body, v)?)),
        ApiKey::ShareFetch => answer!(share::fetch(ctx, info, decode(&mut body, v)?).await),
        ApiKey::ShareAcknowledge => {
            answer!(share::acknowledge_request(ctx, info, decode(&mut body, v)?).await)
        }
        ApiKey::ReadShareGroupState => answer!(share::read_state(ctx, info, decode(&mut body, v)?)),
        ApiKey::WriteShareGroupState => answer!(share::write_state(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DeleteShareGroupState => answer!(share::delete_state(ctx, info, decode(&mut body, v)?).await),
        ApiKey::DescribeShareGroupOffsets => {
            answer!(share::describe_offsets(ctx, info, decode(&mut body, v)?).await)
        }
        ApiKey::AlterShareGroupOffsets => {
            answer!(share::alter_offsets(ctx, info, decode(&mut body, v)?).await)
        }
        ApiKey::DeleteShareGroupOffsets => {
            answer!(share::delete_offsets(ctx, info, decode(&mut body, v)?).await)
        }
        _ => Err(RequestError::UnknownApi(info.api_key as i16)),
    }
}

/// Frames a response: size, header (v0, or v1 with tagged fields), body.
pub fn encode<T: Encodable>(info: &RequestInfo, body: &T) -> Result<Response, RequestError> {
    let header_version = if info.api_key == ApiKey::ApiVersions {
        0 // ApiVersions answers always use header v0, even when the body is flexible
    } else if info.decode_version != info.version {
        legacy::RESPONSE_HEADER_VERSION
    } else {
        info.api_key.response_header_version(info.version)
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(info.header.correlation_id);
    header.encode(&mut buf, header_version).map_err(|e| encode_failed(info, e))?;
    if info.decode_version != info.version {
        let mut bridged = BytesMut::with_capacity(256);
        body.encode(&mut bridged, info.decode_version).map_err(|e| encode_failed(info, e))?;
        let old = legacy::downgrade_response(info.api_key, info.version, &bridged)
            .map_err(|e| encode_failed(info, e))?;
        buf.put_slice(&old);
    } else {
        body.encode(&mut buf, info.version).map_err(|e| encode_failed(info, e))?;
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Response::new(vec![Chunk::Bytes(buf.freeze())]))
}

const CLUSTER_DENIED: i16 = 31; // CLUSTER_AUTHORIZATION_FAILED
const GROUP_DENIED: i16 = 30; // GROUP_AUTHORIZATION_FAILED

/// InitProducerId without a transactional id: IDEMPOTENT_WRITE on the cluster, or (KIP-679)
/// WRITE on any topic.
/// Whether an InitProducerId names a transactional id (a malformed one is left to the handler).
fn is_transactional_init(body: &Bytes, version: i16) -> bool {
    let request: Result<kafka_protocol::messages::InitProducerIdRequest, _> =
        decode(&mut body.clone(), version);
    request.is_ok_and(|r| r.transactional_id.is_some())
}

fn may_write_idempotently(ctx: &ApiCtx, info: &RequestInfo) -> bool {
    if ctx.allowed_on_cluster(info, op::IDEMPOTENT_WRITE) {
        return true;
    }
    let acls = ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).acls.clone();
    let principal = info.session.principal();
    let host = info.session.host();
    let may = acls.all().any(|a| {
        a.resource_type == resource::TOPIC
            && a.permission == crate::security::acl::permission::ALLOW
            && (a.operation == op::WRITE || a.operation == op::ALL)
            && (a.principal == *principal || a.principal == "User:*")
            && (a.host == host || a.host == "*")
            && ctx.allowed(info, op::WRITE, resource::TOPIC, &a.name)
    });
    may
}

fn denied_acl_creation() -> create_acls_response::AclCreationResult {
    create_acls_response::AclCreationResult::default().with_error_code(CLUSTER_DENIED)
}

fn denied_acl_filter() -> delete_acls_response::DeleteAclsFilterResult {
    delete_acls_response::DeleteAclsFilterResult::default().with_error_code(CLUSTER_DENIED)
}

fn encode_failed(info: &RequestInfo, e: impl std::fmt::Display) -> RequestError {
    RequestError::Encode(format!("{:?} v{}: {e}", info.api_key, info.version))
}
