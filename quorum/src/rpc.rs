//! The controller protocol: length-prefixed JSON frames over TCP on the controller listener.
//! Controllers exchange Raft messages with it; brokers register, heartbeat, fetch metadata and
//! forward admin changes with it. One request at a time per connection, answered in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::records::{Endpoint, NodeId, TopicRecord};
use crate::state_machine::Delta;
use crate::transport::{Conn, Transport};
use crate::types::TypeConfig;
use riptide_model::TopicPartition;

/// Frames above this are refused (a snapshot of a very large cluster still fits).
pub const MAX_FRAME: usize = 256 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registration {
    pub id: NodeId,
    pub incarnation: u128,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registered {
    pub epoch: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: NodeId,
    pub epoch: i64,
    /// The metadata log index the broker has applied.
    pub applied: u64,
    /// Set from SIGTERM on: move leadership away and fence me.
    pub want_shutdown: bool,
    /// What this broker holds and serves, for the balancer (sent every few heartbeats).
    #[serde(default)]
    pub load: Option<crate::balancer::BrokerLoad>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub fenced: bool,
    /// Controlled shutdown is done: the broker leads nothing and may stop.
    pub shutdown_ready: bool,
}

/// Admin changes a broker forwards to the active controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminCommand {
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        /// Explicit replica lists (CreateTopics' assignments); placed by the controller if
        /// absent.
        assignment: Option<Vec<Vec<NodeId>>>,
        /// Keep this id (a topic imported from a single-node data directory).
        id: Option<u128>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        topic: String,
        count: i32,
        assignment: Option<Vec<Vec<NodeId>>>,
        validate_only: bool,
    },
    SetTopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces one broker's dynamic configs (`CLUSTER_DEFAULT`: the cluster-wide ones),
    /// validated by the broker that forwards it.
    SetBrokerConfigs {
        broker: NodeId,
        configs: BTreeMap<String, String>,
    },
    /// Sets (`Some`) or removes (`None`) client quotas of one entity, validated by the broker
    /// that forwards it; the controller merges them into the entity's current set.
    AlterClientQuotas {
        entity: crate::records::QuotaEntity,
        ops: BTreeMap<String, Option<crate::records::QuotaValue>>,
    },
    /// Replaces one client-metrics subscription's configs (empty: deletes it), validated by
    /// the broker that forwards it.
    SetClientMetrics {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces one group's configs (empty: deletes them), validated by the broker.
    SetGroupConfigs {
        group: String,
        configs: BTreeMap<String, String>,
    },
    AddVoter {
        id: NodeId,
        addr: String,
    },
    RemoveVoter {
        id: NodeId,
    },
    /// AlterPartitionReassignments: a target replica list per partition, `None` cancels.
    Reassign {
        partitions: Vec<(TopicPartition, Option<Vec<NodeId>>)>,
    },
    /// ElectLeaders: `None` means every partition.
    ElectLeaders {
        unclean: bool,
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Drain a broker (or put it back in service).
    Decommission {
        id: NodeId,
        draining: bool,
    },
    /// UnregisterBroker: forget a broker that is gone for good (fenced, holding no replica).
    UnregisterBroker {
        id: NodeId,
    },
    /// Users and ACLs: records the broker built (only `MetadataRecord::is_security` ones),
    /// written as one entry.
    Security {
        records: Vec<crate::records::MetadataRecord>,
    },
}

/// A partition leader asks to change its ISR (Kafka's AlterPartition): followers that fell
/// behind leave it, caught-up ones rejoin. Refused unless the leader and both epochs are
/// current, so a deposed leader cannot shrink an ISR it no longer owns.
/// One request carries every change a leader wants at once, written as one log entry (as
/// Kafka's AlterPartition batches per broker): after a broker fails, its followers' leaders
/// shrink many ISRs, and one fsync'ed entry each would flood the quorum.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlterPartition {
    pub broker: NodeId,
    pub broker_epoch: i64,
    pub partitions: Vec<IsrChangeRequest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IsrChangeRequest {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: crate::records::LeaderEpoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminReply {
    /// The log index the change was applied at (0 when nothing was written); a broker waits
    /// until its image reaches it before answering its client.
    pub index: u64,
    pub topic: Option<TopicRecord>,
    /// Per-partition verdicts of Reassign and ElectLeaders, in request order.
    #[serde(default)]
    pub partitions: Vec<(TopicPartition, Result<(), ControllerError>)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("not the active controller")]
    NotController { leader: Option<String> },
    #[error("{0}")]
    TopicExists(String),
    #[error("{0}")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// Past a configured resource limit (`max.partitions`, `max.broker.partitions`).
    #[error("{0}")]
    PolicyViolation(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("broker {0}: stale broker epoch")]
    StaleBrokerEpoch(NodeId),
    #[error("broker {0} is already registered by a live incarnation")]
    DuplicateBrokerRegistration(NodeId),
    #[error("{0}")]
    FencedLeaderEpoch(String),
    #[error("{0}")]
    InvalidUpdateVersion(String),
    #[error("{0}")]
    IneligibleReplica(String),
    #[error("{0}")]
    NotLeader(String),
    #[error("{0}")]
    NoReassignmentInProgress(String),
    #[error("The given broker ID {0} was not registered.")]
    BrokerIdNotRegistered(NodeId),
    #[error("{0}")]
    ElectionNotNeeded(String),
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    #[error("the controller did not answer in time")]
    Timeout,
    #[error("{0}")]
    Internal(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VoterInfo {
    pub id: NodeId,
    pub addr: String,
    /// The last log index the leader knows this node has (voters and observers alike).
    pub matched: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuorumInfo {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: u64,
    pub applied: u64,
    pub voters: Vec<VoterInfo>,
    /// Brokers' applied metadata offsets as last reported in their heartbeats.
    pub observers: Vec<(NodeId, u64)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Register(Registration),
    Heartbeat(Heartbeat),
    Fetch {
        broker: NodeId,
        from: u64,
        max_wait_ms: u64,
    },
    Admin(AdminCommand),
    DescribeQuorum,
    AlterPartition(AlterPartition),
    /// The balancer's view (load per broker, running moves, the plan); `run` also starts
    /// the planned moves now instead of at the next round.
    Balance {
        run: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Registered(Result<Registered, ControllerError>),
    Heartbeat(Result<HeartbeatReply, ControllerError>),
    /// What the broker misses, and the controller's applied offset (for the lag metric).
    Fetched(Result<(Delta, u64), ControllerError>),
    Admin(Result<AdminReply, ControllerError>),
    Quorum(Result<QuorumInfo, ControllerError>),
    /// Each change's verdict, in request order, and the log index the accepted ones were
    /// applied at (0: none).
    AlterPartition(Result<(Vec<Result<(), ControllerError>>, u64), ControllerError>),
    Balance(Result<crate::balancer::BalanceReport, ControllerError>),
}

pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await
}

/// `Ok(None)` at a clean end of stream.
pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// One request and its answer on a fresh or pooled connection, within `timeout`.
pub async fn call_on(stream: &mut Conn, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let exchange = async {
        write_frame(stream, req).await?;
        read_frame::<Response>(stream).await?.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "controller closed the connection")
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "controller RPC timed out")),
    }
}

/// A broker's (or CLI's) way to the active controller: tries the last known leader, follows
/// NotController hints, and walks the voters until the deadline.
pub struct ControllerClient {
    voters: Vec<String>,
    /// The active controller as last seen; shared by a broker's clients (`sharing_leader`), so
    /// an admin call goes where the heartbeats already found the leader instead of walking
    /// the voters (a paused voter accepts the connection and answers nothing until the
    /// call's timeout).
    leader: std::sync::Arc<Mutex<Option<String>>>,
    pool: Mutex<HashMap<String, Vec<Conn>>>,
    next: Mutex<usize>,
    transport: Transport,
}

impl ControllerClient {
    pub fn new(voters: Vec<String>, transport: Transport) -> ControllerClient {
        assert!(!voters.is_empty(), "a controller client needs at least one voter");
        ControllerClient {
            voters,
            leader: std::sync::Arc::new(Mutex::new(None)),
            pool: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
            transport,
        }
    }

    /// Another client to the same voters (its own connections) that shares this one's
    /// knowledge of the active controller.
    pub fn sharing_leader(&self) -> ControllerClient {
        ControllerClient {
            voters: self.voters.clone(),
            leader: self.leader.clone(),
            pool: Mutex::new(HashMap::new()),
            next: Mutex::new(0),
            transport: self.transport.clone(),
        }
    }

    fn pick(&self) -> String {
        if let Some(l) = self.leader.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return l;
        }
        let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *n = (*n + 1) % self.voters.len();
        self.voters[*n].clone()
    }

    fn forget_leader(&self) {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Sends `make()` to the active controller; `Err` only when no controller answered as
    /// leader before `deadline`. The reply may itself carry a controller error.
    pub async fn call(
        &self,
        make: impl Fn() -> Request,
        rpc_timeout: Duration,
        deadline: Instant,
    ) -> Result<Response, ControllerError> {
        loop {
            let addr = self.pick();
            let pooled =
                self.pool.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&addr).and_then(|v| v.pop());
            let stream = match pooled {
                Some(s) => Ok(s),
                None => self.transport.connect(&addr, rpc_timeout).await,
            };
            let result = match stream {
                Ok(mut s) => {
                    let r = call_on(&mut s, &make(), rpc_timeout).await;
                    if r.is_ok() {
                        self.pool
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(addr.clone())
                            .or_default()
                            .push(s);
                    }
                    r
                }
                Err(e) => Err(e),
            };
            let hint = match &result {
                Ok(resp) => match not_controller(resp) {
                    None => {
                        // It answered as the active controller: the next call goes there first.
                        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                        return Ok(result.expect("checked ok"));
                    }
                    Some(hint) => hint,
                },
                Err(e) => {
                    tracing::debug!("controller {addr}: {e}");
                    None
                }
            };
            match hint {
                Some(leader) if leader != addr => {
                    *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(leader);
                }
                _ => {
                    self.forget_leader();
                    if Instant::now() >= deadline {
                        return Err(ControllerError::Timeout);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if Instant::now() >= deadline {
                return Err(ControllerError::Timeout);
            }
        }
    }
}

fn not_controller(resp: &Response) -> Option<Option<String>> {
    let err = match resp {
        Response::Registered(Err(e)) | Response::Heartbeat(Err(e)) => e,
        Response::Fetched(Err(e)) | Response::Admin(Err(e)) | Response::Quorum(Err(e)) => e,
        Response::AlterPartition(Err(e)) | Response::Balance(Err(e)) => e,
        _ => return None,
    };
    match err {
        ControllerError::NotController { leader } => Some(leader.clone()),
        _ => None,
    }
}
