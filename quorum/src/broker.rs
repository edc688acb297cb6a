//! The broker side of the quorum: registers this broker with the active controller, heartbeats,
//! and follows the metadata log by fetching the batches it has not applied (or the whole image
//! when it is too far behind), applying them to its own copy of the image. What changed is
//! handed to the broker (`ImageSink`) to open, reconfigure or delete logs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::image::{Change, MetadataImage};
use crate::records::{Endpoint, NodeId};
use crate::rpc::{
    AdminCommand, AdminReply, AlterPartition, ControllerClient, ControllerError, Heartbeat, IsrChangeRequest,
    QuorumInfo, Registration, Request, Response,
};
use crate::state_machine::Delta;

/// How long an ISR change may take before the leader tries again.
const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_secs(10);

pub struct BrokerConfig {
    pub id: NodeId,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Controller addresses (voters or bootstrap servers).
    pub controllers: Vec<String>,
    pub heartbeat_interval: Duration,
    /// How the controllers are reached (their listener's protocol).
    pub transport: crate::transport::Transport,
}

/// Receives every applied change, on the agent's thread; must not block for long.
pub trait ImageSink: Send + Sync + 'static {
    fn applied(&self, image: &MetadataImage, changes: &[Change]);
}

pub struct BrokerAgent {
    cfg: BrokerConfig,
    incarnation: u128,
    client: ControllerClient,
    fetch_client: ControllerClient,
    /// Registration and heartbeats only: their own connection, so a heartbeat never waits
    /// behind an admin call or a metadata fetch, and the controller reads the connection's
    /// close as this process's possible death (`Controller::heartbeat_connection_closed`).
    session_client: ControllerClient,
    image: Mutex<MetadataImage>,
    applied_tx: tokio::sync::watch::Sender<u64>,
    epoch: AtomicI64,
    fenced: AtomicBool,
    want_shutdown: AtomicBool,
    shutdown_ready: tokio::sync::watch::Sender<bool>,
    /// Cuts the heartbeat loop's sleep short (a controlled shutdown should not wait a period).
    wake: tokio::sync::Notify,
    /// The controller's applied index at our last fetch (for the lag metric).
    pub leader_applied: std::sync::atomic::AtomicU64,
    sink: Arc<dyn ImageSink>,
    /// The latest load report, sent with the next heartbeat.
    load: Mutex<Option<crate::balancer::BrokerLoad>>,
}

const RPC_TIMEOUT: Duration = Duration::from_secs(3);

impl BrokerAgent {
    pub fn start(cfg: BrokerConfig, sink: Arc<dyn ImageSink>) -> Arc<BrokerAgent> {
        let client = ControllerClient::new(cfg.controllers.clone(), cfg.transport.clone());
        let agent = Arc::new(BrokerAgent {
            fetch_client: client.sharing_leader(),
            session_client: client.sharing_leader(),
            client,
            incarnation: crate::controller::new_id(),
            cfg,
            image: Mutex::new(MetadataImage::default()),
            load: Mutex::new(None),
            applied_tx: tokio::sync::watch::channel(0).0,
            epoch: AtomicI64::new(-1),
            fenced: AtomicBool::new(true),
            want_shutdown: AtomicBool::new(false),
            shutdown_ready: tokio::sync::watch::channel(false).0,
            wake: tokio::sync::Notify::new(),
            leader_applied: Default::default(),
            sink,
        });
        tokio::spawn(fetch_loop(agent.clone()));
        tokio::spawn(heartbeat_loop(agent.clone()));
        agent
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn applied(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// Hands the balancer a fresh load report (sent with the next heartbeat).
    pub fn report_load(&self, load: crate::balancer::BrokerLoad) {
        *self.load.lock().unwrap_or_else(|e| e.into_inner()) = Some(load);
    }

    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    pub fn image(&self) -> MetadataImage {
        self.image.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until this broker is registered, has applied the log up to its registration and
    /// the controller has unfenced it (and so given it back the partitions it leads), with the
    /// cluster id written.
    pub async fn wait_ready(&self) {
        let mut rx = self.applied_tx.subscribe();
        loop {
            let epoch = self.epoch();
            if epoch > 0 && *rx.borrow_and_update() >= epoch as u64 && !self.is_fenced() {
                let img = self.image();
                let unfenced = img.brokers.get(&self.cfg.id).is_some_and(|b| !b.fenced && b.epoch == epoch);
                if unfenced && img.cluster_id.is_some() {
                    return;
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
        }
    }

    /// Waits until the image has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.applied_tx.subscribe();
        let until = Instant::now() + timeout;
        loop {
            if *rx.borrow_and_update() >= index {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return *rx.borrow() >= index;
            }
        }
    }

    /// Forwards an admin change to the active controller and waits until this broker's image
    /// has it, so the client that asked sees its change here at once.
    pub async fn admin(&self, cmd: AdminCommand, timeout: Duration) -> Result<AdminReply, ControllerError> {
        let deadline = Instant::now() + timeout;
        let resp = self
            .client
            .call(|| Request::Admin(cmd.clone()), timeout.min(Duration::from_secs(35)), deadline)
            .await?;
        let Response::Admin(r) = resp else {
            return Err(ControllerError::Internal(format!("unexpected {resp:?}")));
        };
        let reply = r?;
        if reply.index > 0
            && !self.wait_applied(reply.index, deadline.saturating_duration_since(Instant::now())).await
        {
            return Err(ControllerError::Timeout);
        }
        Ok(reply)
    }

    /// Asks the controller for new ISRs of partitions this broker leads, in one request;
    /// returns each change's verdict once this broker has applied the accepted ones.
    pub async fn alter_partitions(
        &self,
        partitions: Vec<IsrChangeRequest>,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        let deadline = Instant::now() + ALTER_PARTITION_TIMEOUT;
        let req = AlterPartition { broker: self.id(), broker_epoch: self.epoch(), partitions };
        let resp = self.client.call(|| Request::AlterPartition(req.clone()), RPC_TIMEOUT, deadline).await?;
        let Response::AlterPartition(r) = resp else {
            return Err(ControllerError::Internal(format!("unexpected {resp:?}")));
        };
        let (verdicts, index) = r?;
        if index > 0 && !self.wait_applied(index, deadline.saturating_duration_since(Instant::now())).await {
            return Err(ControllerError::Timeout);
        }
        Ok(verdicts)
    }

    pub async fn describe_quorum(&self) -> Result<QuorumInfo, ControllerError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        match self.client.call(|| Request::DescribeQuorum, RPC_TIMEOUT, deadline).await? {
            Response::Quorum(r) => r,
            other => Err(ControllerError::Internal(format!("unexpected {other:?}"))),
        }
    }

    /// Controlled shutdown: asks the controller to move leadership away and fence this broker;
    /// returns when it has (or after `timeout`, as Kafka gives up and stops anyway).
    pub async fn controlled_shutdown(&self, timeout: Duration) -> bool {
        self.want_shutdown.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let mut rx = self.shutdown_ready.subscribe();
        let wait = async {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    fn apply_delta(&self, delta: Delta) {
        let mut changes = Vec::new();
        let applied = {
            let mut img = self.image.lock().unwrap_or_else(|e| e.into_inner());
            match delta {
                Delta::Batches(batches) => {
                    for (index, records) in batches {
                        if index <= img.applied {
                            continue;
                        }
                        if records.is_empty() {
                            img.skip(index);
                        } else {
                            img.apply(index, &records, &mut changes);
                        }
                    }
                }
                Delta::Image(new) => {
                    if new.applied <= img.applied {
                        return;
                    }
                    changes = diff(&img, &new);
                    *img = *new;
                }
            }
            if !changes.is_empty() || img.applied > *self.applied_tx.borrow() {
                self.sink.applied(&img, &changes);
            }
            img.applied
        };
        self.applied_tx.send_if_modified(|a| {
            let moved = applied > *a;
            *a = applied.max(*a);
            moved
        });
    }
}

/// The changes that turn `old` into `new` (after a broker received a whole image).
pub fn diff(old: &MetadataImage, new: &MetadataImage) -> Vec<Change> {
    let mut out = Vec::new();
    if old.brokers != new.brokers {
        out.push(Change::BrokersChanged);
    }
    if old.scram != new.scram || old.acls != new.acls {
        out.push(Change::SecurityChanged);
    }
    if old.broker_configs != new.broker_configs {
        out.push(Change::BrokerConfigsChanged);
    }
    if old.client_quotas != new.client_quotas {
        out.push(Change::ClientQuotasChanged);
    }
    if old.client_metrics != new.client_metrics {
        out.push(Change::ClientMetricsChanged);
    }
    if old.group_configs != new.group_configs {
        out.push(Change::GroupConfigsChanged);
    }
    for (name, t) in &old.topics {
        match new.topics.get(name) {
            Some(n) if n.id == t.id => {}
            _ => out.push(Change::TopicDeleted {
                name: name.clone(),
                id: t.id,
                partitions: t.partitions.len() as i32,
            }),
        }
    }
    for (name, t) in &new.topics {
        match old.topics.get(name) {
            Some(o) if o.id == t.id => {
                if o.configs != t.configs {
                    out.push(Change::TopicConfigsChanged(name.clone()));
                }
                if o.partitions.len() < t.partitions.len() {
                    out.push(Change::PartitionsAdded(name.clone()));
                }
                for (i, (a, b)) in o.partitions.iter().zip(&t.partitions).enumerate() {
                    if a != b {
                        out.push(Change::LeaderChanged { topic: name.clone(), partition: i as i32 });
                    }
                }
            }
            _ => out.push(Change::TopicCreated(name.clone())),
        }
    }
    out
}

async fn fetch_loop(agent: Arc<BrokerAgent>) {
    loop {
        let from = agent.applied();
        let deadline = Instant::now() + Duration::from_secs(5);
        let req = || Request::Fetch { broker: agent.cfg.id, from, max_wait_ms: 1000 };
        match agent.fetch_client.call(req, RPC_TIMEOUT, deadline).await {
            Ok(Response::Fetched(Ok((delta, leader_applied)))) => {
                agent.leader_applied.fetch_max(leader_applied, Ordering::Relaxed);
                agent.apply_delta(delta);
            }
            Ok(other) => {
                tracing::debug!("metadata fetch: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                tracing::debug!("metadata fetch: {e}");
            }
        }
    }
}

async fn heartbeat_loop(agent: Arc<BrokerAgent>) {
    let mut warned = Instant::now();
    loop {
        if agent.epoch() < 0 {
            let reg = Registration {
                id: agent.cfg.id,
                incarnation: agent.incarnation,
                endpoints: agent.cfg.endpoints.clone(),
                rack: agent.cfg.rack.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            match agent.session_client.call(|| Request::Register(reg.clone()), RPC_TIMEOUT, deadline).await {
                Ok(Response::Registered(Ok(r))) => {
                    tracing::info!("broker {} registered with broker epoch {}", agent.cfg.id, r.epoch);
                    agent.epoch.store(r.epoch, Ordering::SeqCst);
                }
                Ok(other) => {
                    tracing::warn!("broker {} registration refused: {other:?}", agent.cfg.id);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    if warned.elapsed() > Duration::from_secs(5) {
                        tracing::warn!("broker {}: no active controller yet ({e})", agent.cfg.id);
                        warned = Instant::now();
                    }
                }
            }
            continue;
        }
        let hb = Heartbeat {
            id: agent.cfg.id,
            epoch: agent.epoch(),
            applied: agent.applied(),
            want_shutdown: agent.want_shutdown.load(Ordering::SeqCst),
            load: agent.load.lock().unwrap_or_else(|e| e.into_inner()).take(),
        };
        let deadline = Instant::now() + agent.cfg.heartbeat_interval.max(Duration::from_secs(2));
        // Each attempt gets one heartbeat interval: a controller that stopped (SIGSTOP, a hung
        // host) still accepts connections, and waiting RPC_TIMEOUT for it could outlast the
        // session, so the new active controller would fence a healthy broker.
        let attempt = agent.cfg.heartbeat_interval.clamp(Duration::from_millis(250), RPC_TIMEOUT);
        let mut failed = false;
        match agent.session_client.call(|| Request::Heartbeat(hb.clone()), attempt, deadline).await {
            Ok(Response::Heartbeat(Ok(reply))) => {
                agent.fenced.store(reply.fenced, Ordering::Relaxed);
                if reply.shutdown_ready {
                    agent.shutdown_ready.send_replace(true);
                }
            }
            Ok(Response::Heartbeat(Err(ControllerError::StaleBrokerEpoch(_)))) => {
                tracing::warn!("broker {}: stale broker epoch, registering again", agent.cfg.id);
                agent.epoch.store(-1, Ordering::SeqCst);
                continue;
            }
            Ok(other) => tracing::debug!("heartbeat: {other:?}"),
            Err(e) => {
                tracing::debug!("heartbeat: {e}");
                failed = true;
            }
        }
        // Heartbeat faster while waiting to be unfenced or shut down, so neither waits a period;
        // and at once after a failed one: its connection was dropped, and the controller fences
        // a broker that does not heartbeat again soon after its connection closed.
        let fast = failed || agent.is_fenced() || agent.want_shutdown.load(Ordering::SeqCst);
        let period = match (failed, fast) {
            (true, _) => Duration::from_millis(10),
            (false, true) => Duration::from_millis(100),
            (false, false) => agent.cfg.heartbeat_interval,
        };
        let _ = tokio::time::timeout(period, agent.wake.notified()).await;
    }
}
