//! openraft's network over the controller protocol: one persistent connection per peer,
//! re-opened after an error. Addresses come from `controller.quorum.voters` first (so a
//! voter that moved is found at its configured address), then from the membership.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::records::NodeId;
use crate::rpc::{call_on, Request, Response};
use crate::transport::{Conn, Transport};
use crate::types::TypeConfig;

#[derive(Clone)]
pub struct Network {
    pub configured: Arc<BTreeMap<NodeId, String>>,
    pub transport: Transport,
    pub refusals: Refusals,
}

/// When each peer's controller port last refused a connection (since its last accepted one).
/// A refused connect means nothing listens there: on a combined node, its broker is gone too,
/// which the active controller reads as a crash (`Controller::fence_refused`).
pub type Refusals = Arc<Mutex<HashMap<NodeId, Instant>>>;

pub struct Peer {
    target: NodeId,
    addr: String,
    conn: Option<Conn>,
    transport: Transport,
    refusals: Refusals,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        let addr = self.configured.get(&target).cloned().unwrap_or_else(|| node.addr.clone());
        Peer { target, addr, conn: None, transport: self.transport.clone(), refusals: self.refusals.clone() }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

/// The least time a Raft RPC is given. A follower's election timer restarts when a request
/// arrives, not when it is answered, so a longer wait for an answer (a follower's fsync on a
/// busy disk) never causes an election.
const RPC_TTL_FLOOR: std::time::Duration = std::time::Duration::from_millis(500);

impl Peer {
    async fn exchange<E: std::error::Error>(
        &mut self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, BasicNode, E>> {
        if self.conn.is_none() {
            // The TLS handshake is part of the connect and of its time limit.
            let ttl = option.hard_ttl().max(RPC_TTL_FLOOR);
            let connected = self.transport.connect(&self.addr, ttl).await;
            let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
            match connected {
                Ok(s) => {
                    refusals.remove(&self.target);
                    self.conn = Some(s);
                }
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        refusals.insert(self.target, Instant::now());
                    }
                    return Err(RPCError::Unreachable(Unreachable::new(&e)));
                }
            }
        }
        let stream = self.conn.as_mut().expect("connected above");
        // openraft's TTL for AppendEntries is the heartbeat interval (150 ms): a follower whose
        // fsync is slower for a moment (a busy disk) timed out, lost its connection and was
        // retried for seconds. Below the election timeout, a longer wait costs nothing.
        let ttl = option.hard_ttl().max(RPC_TTL_FLOOR);
        match call_on(stream, &req, ttl).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.conn = None;
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self, r: Response) -> RPCError<NodeId, BasicNode, E> {
        let e = std::io::Error::other(format!("peer {} answered {r:?}", self.target));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        match self.exchange(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self.exchange(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.exchange(Request::Vote(rpc), &option).await? {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(self.unexpected(other)),
        }
    }
}
