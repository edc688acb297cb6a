//! A controller: one voter (or a joining node) of the metadata quorum, and — while it is the
//! Raft leader — the *active controller*: it registers brokers, tracks their heartbeats, fences
//! those whose session expires and unfences them when they catch up, elects partition leaders,
//! places new partitions, and turns forwarded admin requests into metadata records.
//!
//! Broker sessions live only in the active controller's memory, as in Kafka: a new active
//! controller gives every registered broker a fresh session timeout before fencing anyone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::net::TcpListener;

mod moves;
pub mod rules;

use crate::balancer::{BalancerConfig, BrokerLoad};
use crate::image::MetadataImage;
use crate::log_store::LogStore;
use crate::network::{Network, Refusals};
use crate::placement;
use crate::records::{MetadataRecord, NodeId, PartitionState, TopicRecord};
use crate::rpc::{
    read_frame, write_frame, AdminCommand, AdminReply, AlterPartition, ControllerError, Heartbeat,
    HeartbeatReply, QuorumInfo, Registered, Registration, Request, Response, VoterInfo,
};
use crate::state_machine::StateMachine;
use crate::types::{Applied, Batch, Raft};

pub struct ControllerConfig {
    pub node_id: NodeId,
    /// Where the Raft log, its state and snapshots live (`<data>/__cluster_metadata-0`).
    pub dir: PathBuf,
    /// `controller.quorum.voters`: id → host:port. Empty for a controller that joins an
    /// existing quorum (`controller.quorum.bootstrap.servers`) and waits to be added.
    pub voters: BTreeMap<NodeId, String>,
    /// The address other controllers reach this one at.
    pub advertised: String,
    pub session_timeout: Duration,
    /// `broker.session.disconnect.ms`: a broker whose heartbeat connection closed and that has
    /// not heartbeated again within this long is fenced at once, without waiting for its
    /// session to expire (zero: only the session timeout fences).
    pub disconnect_grace: Duration,
    /// `broker.heartbeat.interval.ms`: how often live brokers heartbeat, so how soon after an
    /// election a live broker is heard from.
    pub broker_heartbeat_interval: Duration,
    /// The cluster id to write when this quorum is first formed (from `meta.properties` or
    /// config); a random one otherwise.
    pub cluster_id: String,
    pub election_timeout_ms: (u64, u64),
    pub heartbeat_interval_ms: u64,
    pub snapshot_every: u64,
    pub balancer: BalancerConfig,
    /// `max.partitions` / `max.broker.partitions`: CreateTopics and CreatePartitions past them
    /// are refused.
    pub limits: PartitionLimits,
    /// How often the balancer plans and starts moves.
    pub balancer_interval: Duration,
    /// The controller listener's protocol: what it accepts and how it reaches the other voters.
    pub transport: crate::transport::Transport,
}

/// How many partitions the cluster takes (KIP-578's names; Kafka itself has no such limit and
/// will try to create any number, which at tens of thousands per broker can leave a cluster
/// too busy to even delete them again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLimits {
    /// `max.partitions`: partitions in the cluster, counting each once.
    pub max_partitions: usize,
    /// `max.broker.partitions`: partition replicas on any one broker.
    pub max_broker_partitions: usize,
}

impl Default for PartitionLimits {
    fn default() -> Self {
        PartitionLimits { max_partitions: 200_000, max_broker_partitions: 20_000 }
    }
}

impl PartitionLimits {
    /// Refuses `added` (each new partition's replicas) if the cluster or any broker would go
    /// past its limit.
    fn check(&self, image: &MetadataImage, added: &[Vec<NodeId>]) -> Result<(), ControllerError> {
        let existing: usize = image.topics.values().map(|t| t.partitions.len()).sum();
        if existing + added.len() > self.max_partitions {
            return Err(ControllerError::PolicyViolation(format!(
                "Creating {} partition(s) would bring the cluster to {} partitions, over max.partitions={}",
                added.len(),
                existing + added.len(),
                self.max_partitions
            )));
        }
        let mut per_broker: BTreeMap<NodeId, usize> = BTreeMap::new();
        for replicas in added {
            for b in replicas {
                *per_broker.entry(*b).or_default() += 1;
            }
        }
        if per_broker.is_empty() {
            return Ok(());
        }
        for t in image.topics.values() {
            for p in &t.partitions {
                for b in &p.replicas {
                    if let Some(n) = per_broker.get_mut(b) {
                        *n += 1;
                    }
                }
            }
        }
        match per_broker.iter().find(|(_, n)| **n > self.max_broker_partitions) {
            Some((b, n)) => Err(ControllerError::PolicyViolation(format!(
                "Creating {} partition(s) would put {n} partition replicas on broker {b}, over max.broker.partitions={}",
                added.len(),
                self.max_broker_partitions
            ))),
            None => Ok(()),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ControllerMetrics {
    pub active: AtomicBool,
    pub elections: AtomicU64,
    pub fenced_brokers: AtomicU64,
    /// Brokers fenced because their session expired.
    pub fences_session: AtomicU64,
    /// Brokers fenced because their heartbeat connection closed (a crash, or a live broker's
    /// dropped connection: those are unfenced again and counted in `unfences_live`).
    pub fences_disconnect: AtomicU64,
    /// Brokers unfenced under the same broker epoch they were fenced with: the fence hit a
    /// live process (a false fencing, safe but worth counting).
    pub unfences_live: AtomicU64,
    pub last_applied: AtomicU64,
    pub last_log_index: AtomicU64,
    pub moves_in_progress: AtomicU64,
    pub move_bytes_left: AtomicU64,
    pub moves_started: AtomicU64,
    pub moves_completed: AtomicU64,
    pub moves_cancelled: AtomicU64,
    pub replica_spread: AtomicU64,
    pub leader_spread: AtomicU64,
    /// Bytes-in spread over the mean, in thousandths.
    pub bytes_imbalance_milli: AtomicU64,
}

pub struct Controller {
    pub id: NodeId,
    pub raft: Raft,
    sm: StateMachine,
    cfg: ControllerConfig,
    sessions: Mutex<Sessions>,
    /// Serializes check-then-propose so validation sees every earlier change applied.
    propose_lock: tokio::sync::Mutex<()>,
    pub metrics: Arc<ControllerMetrics>,
    /// Brokers' latest load reports (memory only, like sessions).
    loads: Mutex<BTreeMap<NodeId, BrokerLoad>>,
    /// When each fenced broker was first seen fenced by this active controller.
    fenced_since: Mutex<HashMap<NodeId, Instant>>,
    /// When the balancer last moved a partition for its bytes (the cooldown).
    bytes_moved: Mutex<HashMap<riptide_model::TopicPartition, Instant>>,
    /// Voters whose controller port refused Raft's connections (shared with the network).
    refusals: Refusals,
}

#[derive(Default)]
struct Sessions {
    /// The term these sessions were started in; a new term restarts them all.
    term: u64,
    /// When this controller started the term's sessions: a broker not heard from in this term
    /// is counted from here.
    term_started: Option<Instant>,
    /// The previous active controller's node, which gets a shorter first session
    /// (`duties`), and the term that was decided for.
    short_session: Option<NodeId>,
    short_session_term: u64,
    /// When each broker last heartbeated in this term.
    last_seen: HashMap<NodeId, Instant>,
    /// Brokers fenced without a controlled shutdown, by broker epoch: unfencing the same epoch
    /// again means the fenced process was alive.
    fenced_live: HashMap<NodeId, i64>,
    /// The connection (`serve`'s number) each broker heartbeated on last: only the close of
    /// that one counts, not of one it already replaced.
    heartbeat_conn: HashMap<NodeId, u64>,
    applied: HashMap<NodeId, u64>,
}

const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
const FETCH_MAX_BATCHES: usize = 5000;

impl Controller {
    /// Opens the quorum's storage, starts Raft and serves the controller protocol on
    /// `listener`. A configured voter with an empty log forms the quorum with the others.
    pub async fn start(
        cfg: ControllerConfig,
        listener: std::net::TcpListener,
    ) -> std::io::Result<Arc<Controller>> {
        let log = LogStore::open(&cfg.dir)?;
        let sm = StateMachine::open(&cfg.dir)?;
        let raft_config = openraft::Config {
            cluster_name: "riptide-metadata".into(),
            heartbeat_interval: cfg.heartbeat_interval_ms,
            election_timeout_min: cfg.election_timeout_ms.0,
            election_timeout_max: cfg.election_timeout_ms.1,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
            max_in_snapshot_log_to_keep: cfg.snapshot_every / 2,
            ..Default::default()
        }
        .validate()
        .map_err(std::io::Error::other)?;
        let refusals = Refusals::default();
        let network = Network {
            configured: Arc::new(cfg.voters.clone()),
            transport: cfg.transport.clone(),
            refusals: refusals.clone(),
        };
        let raft = Raft::new(cfg.node_id, Arc::new(raft_config), network, log, sm.clone())
            .await
            .map_err(std::io::Error::other)?;
        let initialized = raft.is_initialized().await.map_err(std::io::Error::other)?;
        if !initialized && cfg.voters.contains_key(&cfg.node_id) {
            // Every configured voter proposes the same initial membership; the first log entry
            // is identical on all of them, so it does not matter who wins.
            let members: BTreeMap<NodeId, BasicNode> =
                cfg.voters.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!("metadata quorum formed with voters {:?}", cfg.voters),
                Err(e) => tracing::info!("metadata quorum already forming: {e}"),
            }
        } else if !initialized {
            tracing::info!("controller {} waits to be added to the metadata quorum", cfg.node_id);
        }
        let c = Arc::new(Controller {
            id: cfg.node_id,
            raft,
            sm,
            cfg,
            sessions: Mutex::new(Sessions::default()),
            propose_lock: tokio::sync::Mutex::new(()),
            metrics: Arc::new(ControllerMetrics::default()),
            loads: Mutex::new(BTreeMap::new()),
            fenced_since: Mutex::new(HashMap::new()),
            bytes_moved: Mutex::new(HashMap::new()),
            refusals,
        });
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        tokio::spawn(accept_loop(c.clone(), listener));
        tokio::spawn(duties(c.clone()));
        Ok(c)
    }

    pub fn image(&self) -> MetadataImage {
        self.sm.lock().image.clone()
    }

    /// Reads the applied image in place (the periodic paths must not copy every topic).
    fn with_image<R>(&self, f: impl FnOnce(&MetadataImage) -> R) -> R {
        f(&self.sm.lock().image)
    }

    fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        self.cfg
            .voters
            .get(&leader)
            .cloned()
            .or_else(|| m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone()))
    }

    fn ensure_active(&self) -> Result<(), ControllerError> {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader && m.current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(ControllerError::NotController {
                leader: self.leader_addr().filter(|a| *a != self.cfg.advertised),
            })
        }
    }

    async fn propose(&self, records: Vec<MetadataRecord>) -> Result<Applied, ControllerError> {
        let write = self.raft.client_write(Batch { records });
        match tokio::time::timeout(PROPOSE_TIMEOUT, write).await {
            Err(_) => Err(ControllerError::Timeout),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(e)) => Err(self.write_error(e)),
        }
    }

    fn write_error(&self, e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ControllerError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ControllerError::NotController {
                leader: f
                    .leader_id
                    .and_then(|l| self.cfg.voters.get(&l).cloned())
                    .or_else(|| f.leader_node.map(|n| n.addr)),
            },
            other => ControllerError::Internal(other.to_string()),
        }
    }

    async fn handle(self: &Arc<Self>, req: Request) -> Response {
        match req {
            Request::AppendEntries(r) => Response::AppendEntries(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::InstallSnapshot(r) => Response::InstallSnapshot(self.raft.install_snapshot(r).await),
            Request::Register(r) => Response::Registered(self.register(r).await),
            Request::Heartbeat(h) => Response::Heartbeat(self.heartbeat(h).await),
            Request::Fetch { broker, from, max_wait_ms } => Response::Fetched(
                self.fetch(broker, from, Duration::from_millis(max_wait_ms.min(5000))).await,
            ),
            Request::Admin(cmd) => Response::Admin(self.admin(cmd).await),
            Request::DescribeQuorum => Response::Quorum(self.describe_quorum()),
            Request::AlterPartition(a) => Response::AlterPartition(self.alter_partition(a).await),
            Request::Balance { run } => Response::Balance(self.balance(run).await),
        }
    }

    async fn register(&self, r: Registration) -> Result<Registered, ControllerError> {
        self.ensure_active()?;
        let _guard = self.propose_lock.lock().await;
        let image = self.image();
        let records =
            rules::register(&image, r.id, r.incarnation, r.endpoints, r.rack, self.session_alive(r.id))?;
        if records.len() > 1 {
            tracing::warn!(
                "broker {} registers again with a new incarnation before its session was fenced: \
                 fencing the old one, {} partition leader(s) change",
                r.id,
                records.len() - 2
            );
        }
        let applied = self.propose(records).await?;
        self.touch(r.id, None);
        tracing::info!("broker {} registered with epoch {}", r.id, applied.index);
        Ok(Registered { epoch: applied.index as i64 })
    }

    fn session_alive(&self, id: NodeId) -> bool {
        let s = self.sessions();
        s.last_seen.get(&id).is_some_and(|t| t.elapsed() < self.cfg.session_timeout)
    }

    /// This term's sessions, started over first if the term is new. Every path that reads or
    /// records a heartbeat comes through here, so a heartbeat heard in a new term before the
    /// periodic duties notice the term is never wiped by a late restart.
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        let term = self.raft.metrics().borrow().current_term;
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if s.term != term {
            s.term = term;
            s.term_started = Some(Instant::now());
            s.last_seen.clear();
        }
        s
    }

    /// The connection that carried `id`'s heartbeats closed. A crashed process's sockets are
    /// closed by its kernel at once, so this is the fastest sign of a crash; but a live broker
    /// drops its connection too when one heartbeat times out (and then heartbeats again on a
    /// new one at once). The rule: fence it if no heartbeat arrives within `disconnect_grace`
    /// of the close. Fencing a live broker is safe (its leaderships move to in-sync replicas,
    /// as after an expired session, and it cannot acknowledge acks=all alone); it costs one
    /// leadership move, and its next heartbeat unfences it, caught up, and gives back the
    /// partitions that have no live leader.
    fn heartbeat_connection_closed(self: &Arc<Self>, id: NodeId, epoch: i64, conn: u64) {
        let grace = self.cfg.disconnect_grace;
        let current = |c: &Controller| {
            let s = c.sessions.lock().unwrap_or_else(|e| e.into_inner());
            s.heartbeat_conn.get(&id) == Some(&conn)
        };
        if grace.is_zero() || self.ensure_active().is_err() || !current(self) {
            return;
        }
        let closed_at = Instant::now();
        let c = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let heard_since = {
                let s = c.sessions();
                s.last_seen.get(&id).is_some_and(|t| *t > closed_at)
                    || s.heartbeat_conn.get(&id) != Some(&conn)
            };
            if !heard_since && c.ensure_active().is_ok() {
                c.fence(id, epoch, FenceCause::Disconnected).await;
            }
        });
    }

    /// Fences broker `id` (if still unfenced under `epoch`) and moves its leaderships to live
    /// in-sync replicas, in one metadata entry.
    async fn fence(&self, id: NodeId, epoch: i64, cause: FenceCause) {
        let _guard = self.propose_lock.lock().await;
        let records = self.with_image(|current| rules::fence(current, id, epoch, false));
        let Some(records) = records else { return };
        let why = match cause {
            FenceCause::SessionExpired => {
                format!("missed heartbeats for {} ms", self.cfg.session_timeout.as_millis())
            }
            FenceCause::Disconnected => format!(
                "closed its heartbeat connection and did not heartbeat again within {} ms",
                self.cfg.disconnect_grace.as_millis()
            ),
            FenceCause::Refused => "is gone (its controller port refuses connections)".to_string(),
        };
        tracing::warn!("broker {id} {why}: fenced, {} partition leader(s) change", records.len() - 1);
        match self.propose(records).await {
            Ok(_) => {
                let counter = match cause {
                    FenceCause::SessionExpired => &self.metrics.fences_session,
                    FenceCause::Disconnected | FenceCause::Refused => &self.metrics.fences_disconnect,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.sessions.lock().unwrap_or_else(|e| e.into_inner()).fenced_live.insert(id, epoch);
            }
            Err(e) => tracing::warn!("fencing broker {id}: {e}"),
        }
    }

    /// Combined nodes whose controller port refused a connection after their broker was last
    /// heard: nothing listens there any more, so the process is gone. This is how the crash of
    /// the previous active controller's node is noticed: its broker's heartbeats went to
    /// itself, so no heartbeat connection to this controller closes, but the new leader's
    /// first replication attempt to it is refused at once. A live node never refuses (its
    /// listener is bound before it first heartbeats), and a restarted one registers again
    /// under a new broker epoch, so the fence only ever hits the epoch that died.
    fn refused_brokers(&self, image: &MetadataImage) -> Vec<(NodeId, i64)> {
        let refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // `broker.session.disconnect.ms=0` turns every crash signal off: only sessions fence.
        if refusals.is_empty() || self.cfg.disconnect_grace.is_zero() {
            return Vec::new();
        }
        let s = self.sessions();
        refusals
            .into_iter()
            .filter(|(_, at)| at.elapsed() < self.cfg.session_timeout)
            .filter(|(id, at)| s.last_seen.get(id).is_none_or(|t| t <= at))
            .filter_map(|(id, _)| image.brokers.get(&id).filter(|b| !b.fenced).map(|b| (id, b.epoch)))
            .collect()
    }

    fn touch(&self, id: NodeId, applied: Option<u64>) {
        let mut s = self.sessions();
        s.last_seen.insert(id, Instant::now());
        if let Some(a) = applied {
            s.applied.insert(id, a);
        }
    }

    async fn heartbeat(&self, h: Heartbeat) -> Result<HeartbeatReply, ControllerError> {
        self.ensure_active()?;
        let state = self
            .with_image(|img| img.brokers.get(&h.id).map(|b| (b.epoch, b.fenced, b.in_controlled_shutdown)));
        let Some((epoch, fenced, in_shutdown)) = state else {
            return Err(ControllerError::StaleBrokerEpoch(h.id));
        };
        if epoch != h.epoch {
            return Err(ControllerError::StaleBrokerEpoch(h.id));
        }
        self.touch(h.id, Some(h.applied));
        if let Some(load) = h.load {
            self.loads.lock().unwrap_or_else(|e| e.into_inner()).insert(h.id, load);
        }
        let leads_nothing =
            |img: &MetadataImage| !img.topics.values().any(|t| t.partitions.iter().any(|p| p.leader == h.id));
        if h.want_shutdown {
            if !in_shutdown {
                let _guard = self.propose_lock.lock().await;
                if let Some(records) = self.with_image(|img| rules::fence(img, h.id, h.epoch, true)) {
                    tracing::info!("broker {} shuts down: moving {} leadership(s)", h.id, records.len() - 1);
                    self.propose(records).await?;
                }
            }
            return Ok(HeartbeatReply { fenced: true, shutdown_ready: self.with_image(leads_nothing) });
        }
        // Caught up: it has applied its own registration (and everything before it).
        if fenced && h.applied >= epoch as u64 {
            let _guard = self.propose_lock.lock().await;
            let records = self.with_image(|current| rules::unfence(current, h.id, h.epoch, h.applied));
            if let Some(records) = records {
                tracing::info!("broker {} unfenced; {} partition leader(s) change", h.id, records.len() - 1);
                self.propose(records).await?;
                let was_live = {
                    let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                    s.fenced_live.remove(&h.id) == Some(h.epoch)
                };
                if was_live {
                    self.metrics.unfences_live.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "broker {} was alive when fenced (epoch {}): unfenced again",
                        h.id,
                        h.epoch
                    );
                }
            }
        }
        let fenced = self.with_image(|img| img.brokers.get(&h.id).is_none_or(|b| b.fenced));
        Ok(HeartbeatReply { fenced, shutdown_ready: false })
    }

    async fn alter_partition(
        &self,
        a: AlterPartition,
    ) -> Result<(Vec<Result<(), ControllerError>>, u64), ControllerError> {
        self.ensure_active()?;
        let _guard = self.propose_lock.lock().await;
        let checked: Vec<Result<MetadataRecord, ControllerError>> = self.with_image(|img| {
            img.brokers
                .get(&a.broker)
                .filter(|b| b.epoch == a.broker_epoch)
                .ok_or(ControllerError::StaleBrokerEpoch(a.broker))?;
            Ok::<_, ControllerError>(
                a.partitions.iter().map(|p| rules::check_alter_partition(img, a.broker, p)).collect(),
            )
        })?;
        let records: Vec<MetadataRecord> = checked.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        let completed =
            records.iter().filter(|r| matches!(r, MetadataRecord::ReassignPartition { .. })).count() as u64;
        let index = if records.is_empty() { 0 } else { self.propose(records).await?.index };
        self.metrics.moves_completed.fetch_add(completed, Ordering::Relaxed);
        for (p, r) in a.partitions.iter().zip(&checked) {
            if let Ok(MetadataRecord::ReassignPartition { replicas, leader, .. }) = r {
                tracing::info!(
                    "{}-{}: move completed, replicas now {replicas:?}, leader {leader}",
                    p.topic,
                    p.partition
                );
            } else if r.is_ok() {
                tracing::info!(
                    "{}-{}: ISR now {:?} (asked by leader {})",
                    p.topic,
                    p.partition,
                    p.isr,
                    a.broker
                );
            }
        }
        Ok((checked.into_iter().map(|r| r.map(|_| ())).collect(), index))
    }

    async fn fetch(
        &self,
        broker: NodeId,
        from: u64,
        wait: Duration,
    ) -> Result<(crate::state_machine::Delta, u64), ControllerError> {
        self.ensure_active()?;
        let mut rx = self.sm.subscribe();
        if *rx.borrow_and_update() <= from {
            let _ = tokio::time::timeout(wait, rx.changed()).await;
        }
        let _ = broker;
        let sm = self.sm.lock();
        Ok((sm.delta_since(from, FETCH_MAX_BATCHES), sm.image.applied))
    }

    async fn admin(&self, cmd: AdminCommand) -> Result<AdminReply, ControllerError> {
        self.ensure_active()?;
        match cmd {
            AdminCommand::AddVoter { id, addr } => return self.add_voter(id, addr).await,
            AdminCommand::RemoveVoter { id } => return self.remove_voter(id).await,
            AdminCommand::Reassign { partitions } => return self.reassign(partitions).await,
            AdminCommand::ElectLeaders { unclean, partitions } => {
                return self.elect_leaders(unclean, partitions).await
            }
            AdminCommand::Decommission { id, draining } => return self.decommission(id, draining).await,
            AdminCommand::UnregisterBroker { id } => return self.unregister(id).await,
            _ => {}
        }
        let _guard = self.propose_lock.lock().await;
        let image = self.image();
        let (records, topic_name) = match build_admin(&image, cmd, &self.cfg.limits)? {
            Built::Records(records, topic) => (records, topic),
            Built::Validated(topic) => {
                return Ok(AdminReply { index: 0, topic: Some(topic), partitions: Vec::new() })
            }
        };
        let applied = self.propose(records).await?;
        if let Some(Err(e)) = applied.results.iter().find(|r| r.is_err()) {
            return Err(match e {
                crate::records::ApplyError::TopicExists(m) => {
                    ControllerError::TopicExists(format!("Topic '{m}' already exists."))
                }
                crate::records::ApplyError::UnknownTopic(_) => {
                    ControllerError::UnknownTopic("This server does not host this topic-partition.".into())
                }
                other => ControllerError::InvalidRequest(other.to_string()),
            });
        }
        let topic = topic_name.and_then(|n| self.image().topics.get(&n).cloned());
        Ok(AdminReply { index: applied.index, topic, partitions: Vec::new() })
    }

    async fn add_voter(&self, id: NodeId, addr: String) -> Result<AdminReply, ControllerError> {
        let learner = self.raft.add_learner(id, BasicNode { addr: addr.clone() }, true);
        let r = tokio::time::timeout(Duration::from_secs(30), learner)
            .await
            .map_err(|_| ControllerError::Timeout)?;
        r.map_err(|e| self.write_error(e))?;
        let change = self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
        let r = tokio::time::timeout(Duration::from_secs(30), change)
            .await
            .map_err(|_| ControllerError::Timeout)?;
        let resp = r.map_err(|e| self.write_error(e))?;
        tracing::info!("controller {id} at {addr} added to the metadata quorum");
        Ok(AdminReply { index: resp.log_id.index, topic: None, partitions: Vec::new() })
    }

    async fn remove_voter(&self, id: NodeId) -> Result<AdminReply, ControllerError> {
        let voters: BTreeSet<NodeId> =
            self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) {
            return Err(ControllerError::InvalidRequest(format!("{id} is not a voter")));
        }
        if voters.len() == 1 {
            return Err(ControllerError::InvalidRequest("cannot remove the last voter".into()));
        }
        let change = self.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false);
        let r = tokio::time::timeout(Duration::from_secs(30), change)
            .await
            .map_err(|_| ControllerError::Timeout)?;
        let resp = r.map_err(|e| self.write_error(e))?;
        tracing::info!("controller {id} removed from the metadata quorum");
        Ok(AdminReply { index: resp.log_id.index, topic: None, partitions: Vec::new() })
    }

    pub fn describe_quorum(&self) -> Result<QuorumInfo, ControllerError> {
        self.ensure_active()?;
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let replication = m.replication.clone().unwrap_or_default();
        let matched = |id: &NodeId| {
            if *id == self.id {
                m.last_log_index
            } else {
                replication.get(id).cloned().flatten().map(|l| l.index)
            }
        };
        let voters = membership
            .voter_ids()
            .map(|id| VoterInfo {
                id,
                addr: membership.get_node(&id).map(|n| n.addr.clone()).unwrap_or_default(),
                matched: matched(&id),
            })
            .collect();
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut observers: Vec<(NodeId, u64)> = s.applied.iter().map(|(k, v)| (*k, *v)).collect();
        observers.sort();
        Ok(QuorumInfo {
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map_or(0, |l| l.index),
            voters,
            observers,
        })
    }
}

/// `first` and the leader changes it causes, computed on a copy of the image with `first`
/// applied, so the batch leaves every partition with a live leader where one exists.
enum Built {
    Records(Vec<MetadataRecord>, Option<String>),
    /// validate_only: what would be created.
    Validated(TopicRecord),
}

fn check_assignment(image: &MetadataImage, assignment: &[Vec<NodeId>]) -> Result<(), ControllerError> {
    for replicas in assignment {
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if replicas.is_empty() || distinct.len() != replicas.len() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Replica assignment {replicas:?} must list distinct brokers"
            )));
        }
        if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "Replica assignment {replicas:?} names broker {b}, which is not registered"
            )));
        }
    }
    Ok(())
}

fn build_admin(
    image: &MetadataImage,
    cmd: AdminCommand,
    limits: &PartitionLimits,
) -> Result<Built, ControllerError> {
    match cmd {
        AdminCommand::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
            assignment,
            id,
            validate_only,
        } => {
            if image.topics.contains_key(&name) {
                return Err(ControllerError::TopicExists(format!("Topic '{name}' already exists.")));
            }
            let replicas = match assignment {
                Some(a) => {
                    check_assignment(image, &a)?;
                    let rf = a[0].len();
                    if a.iter().any(|r| r.len() != rf) {
                        return Err(ControllerError::InvalidReplicaAssignment(
                            "All partitions must have the same number of replicas".into(),
                        ));
                    }
                    a
                }
                None => {
                    placement::place(image, partitions.max(0) as usize, replication_factor.max(0) as usize)
                        .map_err(|e| ControllerError::InvalidReplicationFactor(e.to_string()))?
                }
            };
            limits.check(image, &replicas)?;
            let mut topic = TopicRecord {
                internal: name.starts_with("__"),
                id: id.unwrap_or_else(new_id),
                partitions: replicas.into_iter().map(PartitionState::new).collect(),
                configs,
                name: name.clone(),
            };
            // A replica that is not live cannot lead yet: the partition starts offline and its
            // replica takes it on unfencing.
            for p in &mut topic.partitions {
                p.leader = image.elect(p, None);
            }
            if validate_only {
                return Ok(Built::Validated(topic));
            }
            Ok(Built::Records(vec![MetadataRecord::CreateTopic(topic)], Some(name)))
        }
        AdminCommand::DeleteTopic { name } => {
            let t = image.topics.get(&name).ok_or_else(|| {
                ControllerError::UnknownTopic("This server does not host this topic-partition.".into())
            })?;
            Ok(Built::Records(vec![MetadataRecord::DeleteTopic { name, id: t.id }], None))
        }
        AdminCommand::CreatePartitions { topic, count, assignment, validate_only } => {
            let t = image.topics.get(&topic).ok_or_else(|| {
                ControllerError::UnknownTopic("This server does not host this topic-partition.".into())
            })?;
            let current = t.partitions.len() as i32;
            if count <= current {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Topic currently has {current} partitions, which is higher than the requested {count}."
                )));
            }
            let added = (count - current) as usize;
            let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
            let replicas = match assignment {
                Some(a) => {
                    check_assignment(image, &a)?;
                    if a.len() != added {
                        return Err(ControllerError::InvalidReplicaAssignment(format!(
                            "Increasing the number of partitions by {added} but {} assignments provided.",
                            a.len()
                        )));
                    }
                    a
                }
                None => placement::place(image, added, rf)
                    .map_err(|e| ControllerError::InvalidReplicationFactor(e.to_string()))?,
            };
            limits.check(image, &replicas)?;
            let mut added: Vec<PartitionState> = replicas.into_iter().map(PartitionState::new).collect();
            for p in &mut added {
                p.leader = image.elect(p, None);
            }
            let mut t = t.clone();
            if validate_only {
                t.partitions.extend(added);
                return Ok(Built::Validated(t));
            }
            Ok(Built::Records(
                vec![MetadataRecord::CreatePartitions { topic: topic.clone(), added }],
                Some(topic),
            ))
        }
        AdminCommand::SetTopicConfigs { topic, configs } => {
            if !image.topics.contains_key(&topic) {
                return Err(ControllerError::UnknownTopic(
                    "This server does not host this topic-partition.".into(),
                ));
            }
            Ok(Built::Records(
                vec![MetadataRecord::SetTopicConfigs { topic: topic.clone(), configs }],
                Some(topic),
            ))
        }
        AdminCommand::SetBrokerConfigs { broker, configs } => {
            if broker != crate::records::CLUSTER_DEFAULT && !image.brokers.contains_key(&broker) {
                return Err(ControllerError::InvalidRequest(format!("broker {broker} is not registered")));
            }
            Ok(Built::Records(vec![MetadataRecord::SetBrokerConfigs { broker, configs }], None))
        }
        AdminCommand::SetClientMetrics { name, configs } => {
            if name.is_empty() {
                return Err(ControllerError::InvalidRequest("Subscription name can't be empty".into()));
            }
            Ok(Built::Records(vec![MetadataRecord::SetClientMetrics { name, configs }], None))
        }
        AdminCommand::SetGroupConfigs { group, configs } => {
            if group.is_empty() {
                return Err(ControllerError::InvalidRequest("Group name can't be empty".into()));
            }
            Ok(Built::Records(vec![MetadataRecord::SetGroupConfigs { group, configs }], None))
        }
        AdminCommand::AlterClientQuotas { entity, ops } => {
            if entity.is_empty() {
                return Err(ControllerError::InvalidRequest("Invalid empty client quota entity".into()));
            }
            let mut quotas = image
                .client_quotas
                .iter()
                .find(|q| q.entity == entity)
                .map(|q| q.quotas.clone())
                .unwrap_or_default();
            for (key, value) in ops {
                match value {
                    Some(v) => quotas.insert(key, v),
                    None => quotas.remove(&key),
                };
            }
            Ok(Built::Records(vec![MetadataRecord::SetClientQuotas { entity, quotas }], None))
        }
        AdminCommand::Security { records } => {
            if records.is_empty() || !records.iter().all(MetadataRecord::is_security) {
                return Err(ControllerError::InvalidRequest(
                    "only user and ACL records may be written this way".into(),
                ));
            }
            Ok(Built::Records(records, None))
        }
        AdminCommand::AddVoter { .. }
        | AdminCommand::RemoveVoter { .. }
        | AdminCommand::Reassign { .. }
        | AdminCommand::ElectLeaders { .. }
        | AdminCommand::Decommission { .. }
        | AdminCommand::UnregisterBroker { .. } => {
            Err(ControllerError::InvalidRequest("handled before building records".into()))
        }
    }
}

/// A random non-zero u128 (topic ids).
pub fn new_id() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut id = 0u128;
    while id == 0 {
        let mut a = RandomState::new().build_hasher();
        a.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        let mut b = RandomState::new().build_hasher();
        b.write_u64(a.finish());
        id = (u128::from(a.finish()) << 64) | u128::from(b.finish());
    }
    id
}

async fn accept_loop(c: Arc<Controller>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let c = c.clone();
                // The TLS handshake runs in the connection's own task: a slow or hostile peer
                // must not hold up the next accept.
                tokio::spawn(async move {
                    match c.cfg.transport.accept(stream).await {
                        Ok(conn) => serve(c, conn).await,
                        Err(e) => tracing::warn!("controller connection from {peer} refused: {e}"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("controller listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(c: Arc<Controller>, mut stream: crate::transport::Conn) {
    // The broker (and its epoch) whose heartbeats this connection carries: brokers heartbeat
    // on a connection of their own, so its close says the process may be gone.
    let mut heartbeats_of: Option<(NodeId, i64)> = None;
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    loop {
        let req: Request = match read_frame(&mut stream).await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!("controller connection: {e}");
                break;
            }
        };
        if let Request::Heartbeat(h) = &req {
            heartbeats_of = (!h.want_shutdown).then_some((h.id, h.epoch));
            c.sessions.lock().unwrap_or_else(|e| e.into_inner()).heartbeat_conn.insert(h.id, conn);
        }
        let resp = c.handle(req).await;
        if write_frame(&mut stream, &resp).await.is_err() {
            break;
        }
    }
    if let Some((id, epoch)) = heartbeats_of {
        c.heartbeat_connection_closed(id, epoch, conn);
    }
}

/// Numbers the controller protocol's connections (see `Sessions::heartbeat_conn`).
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Why the active controller fences a broker that did not ask to stop.
#[derive(Clone, Copy, Debug)]
enum FenceCause {
    SessionExpired,
    Disconnected,
    /// Its node's controller port refused a connection (`Controller::refused_brokers`).
    Refused,
}

/// The active controller's periodic work: write the cluster id once, restart sessions on a
/// new term, fence brokers whose session expired; and metrics on every controller.
async fn duties(c: Arc<Controller>) {
    let mut last_leader = None;
    // The Raft leader before the current one (for the shortened session of a new term).
    let mut prev_leader: Option<NodeId> = None;
    let mut tick = tokio::time::interval(DUTY_TICK);
    let mut ticks: u64 = 0;
    let balancer_ticks = (c.cfg.balancer_interval.as_millis() / DUTY_TICK.as_millis()).max(1) as u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let m = c.raft.metrics().borrow().clone();
        if m.running_state.is_err() {
            tracing::error!("metadata quorum stopped: {:?}", m.running_state);
            return;
        }
        if m.current_leader != last_leader {
            if last_leader.is_some() {
                prev_leader = last_leader;
            }
            if m.current_leader.is_some() {
                c.metrics.elections.fetch_add(1, Ordering::Relaxed);
                tracing::info!("metadata quorum leader is {:?} in term {}", m.current_leader, m.current_term);
            }
            last_leader = m.current_leader;
        }
        let active = m.state == ServerState::Leader;
        c.metrics.active.store(active, Ordering::Relaxed);
        c.metrics.last_applied.store(m.last_applied.map_or(0, |l| l.index), Ordering::Relaxed);
        c.metrics.last_log_index.store(m.last_log_index.unwrap_or(0), Ordering::Relaxed);
        let fenced = c.with_image(|img| img.brokers.values().filter(|b| b.fenced).count());
        c.metrics.fenced_brokers.store(fenced as u64, Ordering::Relaxed);
        if !active {
            continue;
        }
        // Sessions start over in a new term: every registered broker gets a full timeout.
        let (expired, no_cluster_id) = c.with_image(|image| {
            let mut s = c.sessions();
            if s.short_session_term != s.term {
                s.short_session_term = s.term;
                // The previous active controller lost the term by going silent for an election
                // timeout: its broker (a combined node) gets two heartbeat intervals to be
                // heard, not a whole session, so a hung or cut-off combined node is fenced
                // soon (a crashed one is fenced at once: `refused_brokers`). A live one finds
                // this controller within a retry (100 ms) of the election.
                s.short_session = prev_leader.filter(|p| *p != c.id && image.brokers.contains_key(p));
            }
            let started = s.term_started.unwrap_or_else(Instant::now);
            let short = (2 * c.cfg.broker_heartbeat_interval).min(c.cfg.session_timeout);
            let expired: Vec<(NodeId, i64)> = image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter(|b| match s.last_seen.get(&b.id) {
                    Some(seen) => seen.elapsed() >= c.cfg.session_timeout,
                    None if s.short_session == Some(b.id) => started.elapsed() >= short,
                    None => started.elapsed() >= c.cfg.session_timeout,
                })
                .map(|b| (b.id, b.epoch))
                .collect();
            drop(s);
            (expired, image.cluster_id.is_none())
        });
        let refused = c.with_image(|image| c.refused_brokers(image));
        if no_cluster_id {
            let _guard = c.propose_lock.lock().await;
            if c.with_image(|img| img.cluster_id.is_none()) {
                let id = c.cfg.cluster_id.clone();
                match c.propose(vec![MetadataRecord::ClusterId { id: id.clone() }]).await {
                    Ok(_) => tracing::info!("cluster id {id}"),
                    Err(e) => tracing::warn!("writing the cluster id: {e}"),
                }
            }
        }
        for (id, epoch) in refused {
            c.fence(id, epoch, FenceCause::Refused).await;
        }
        for (id, epoch) in expired {
            c.fence(id, epoch, FenceCause::SessionExpired).await;
        }
        if ticks.is_multiple_of(COMPLETION_TICKS) {
            c.complete_moves().await;
        }
        if ticks.is_multiple_of(balancer_ticks) {
            c.balance_round().await;
        }
        if ticks.is_multiple_of(PREFERRED_LEADER_TICKS) {
            let _guard = c.propose_lock.lock().await;
            let moves = c.with_image(|img| img.preferred_leader_changes());
            if !moves.is_empty() {
                tracing::info!("{} partition(s) back to their preferred leader", moves.len());
                if let Err(e) = c.propose(moves).await {
                    tracing::warn!("preferred leader election: {e}");
                }
            }
        }
    }
}

/// How often the active controller looks for expired sessions and crashed nodes.
const DUTY_TICK: Duration = Duration::from_millis(100);

/// Preferred-leader election every 50 duty ticks (5 s): soon after a restarted broker is back
/// in the ISR, without moving leadership while it is still catching up.
const PREFERRED_LEADER_TICKS: u64 = 50;

/// Moves whose last replica caught up by other means than an ISR change complete within a
/// second (10 duty ticks).
const COMPLETION_TICKS: u64 = 10;
