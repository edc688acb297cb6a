//! This node's part in the cluster (ARCHITECTURE.md §5): the metadata quorum's controller when
//! `process.roles` has `controller`, and the broker agent that registers, heartbeats and
//! follows the metadata log when it has `broker`. Both run on one thread of their own with a
//! small tokio runtime (openraft needs one); the shards never block on it: they read the
//! applied image from the catalog and send admin changes here (`run`), awaiting the answer.
//!
//! `sink` turns applied metadata into the catalog and into shard work (delete a topic's logs,
//! reconfigure them).

pub mod sink;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use riptide_quorum::{AdminCommand, AdminReply, BrokerAgent, Change, Controller, ControllerError, Endpoint};

use crate::catalog::Catalog;
use crate::config::ServerConfig;

pub struct ClusterHandle {
    rt: tokio::runtime::Handle,
    pub node_id: i32,
    pub agent: Option<Arc<BrokerAgent>>,
    pub controller: Option<Arc<Controller>>,
    /// Where this node's controller listens (also for a one-node quorum on loopback).
    pub controller_addr: Option<SocketAddr>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How long an admin change may wait for the quorum before the client hears REQUEST_TIMED_OUT.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

impl ClusterHandle {
    /// Binds the controller listener, starts the metadata thread with the controller and/or
    /// the broker agent. Returns at once; `wait_ready` waits for the broker to catch up.
    pub fn start(
        config: &ServerConfig,
        catalog: Arc<RwLock<Catalog>>,
        events: flume::Sender<Change>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Arc<ClusterHandle>> {
        let c = &config.cluster;
        let node_id = config.node_id;
        let controller_listener = if c.controller {
            let l = match c.controller_listen {
                Some(addr) => crate::bind::bind_retrying(addr)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("controller listener {addr}: {e}")))?,
                None => bind_private_loopback()?,
            };
            Some(l)
        } else {
            None
        };
        let controller_addr = match &controller_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let advertised_controller = controller_addr.map(|a| advertise(a, &c.voters, node_id));
        let voters = if c.controller && c.voters.is_empty() && c.bootstrap_servers.is_empty() {
            // Combined single node: a quorum of one, this node.
            std::collections::BTreeMap::from([(node_id, advertised_controller.clone().unwrap_or_default())])
        } else {
            c.voters.clone()
        };
        let controllers: Vec<String> =
            if !voters.is_empty() { voters.values().cloned().collect() } else { c.bootstrap_servers.clone() };
        let cluster_id = cluster_id_hint(config);
        let metadata_dir =
            c.metadata_log_dir.clone().unwrap_or_else(|| config.data_dir.join("__cluster_metadata-0"));
        let endpoints = config
            .listeners
            .iter()
            .map(|l| {
                let (host, port) = l.advertised();
                Endpoint {
                    name: l.name.clone(),
                    host,
                    port: port as u16,
                    security_protocol: l.protocol.name().into(),
                }
            })
            .collect();
        let transport = crate::security::controller_tls::transport(config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let broker_cfg = c.broker.then(|| riptide_quorum::BrokerConfig {
            id: node_id,
            endpoints,
            rack: c.rack.clone(),
            controllers,
            heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms),
            transport: transport.clone(),
        });
        let controller_cfg = controller_listener.map(|l| {
            (
                riptide_quorum::ControllerConfig {
                    node_id,
                    dir: metadata_dir,
                    voters,
                    advertised: advertised_controller.clone().unwrap_or_default(),
                    session_timeout: Duration::from_millis(c.session_timeout_ms),
                    disconnect_grace: Duration::from_millis(c.session_disconnect_ms),
                    broker_heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms),
                    cluster_id,
                    election_timeout_ms: (c.election_timeout_ms, 2 * c.election_timeout_ms),
                    heartbeat_interval_ms: (c.election_timeout_ms / 4).max(25),
                    snapshot_every: 1000,
                    balancer: c.balancer.clone(),
                    limits: c.limits,
                    balancer_interval: Duration::from_millis(c.balancer_interval_ms),
                    transport,
                },
                l,
            )
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("riptide-metadata".into()).spawn(move || {
            // Two workers: a task that blocks for a moment (applying a large image, a slow
            // connect) must not hold up Raft's and the brokers' heartbeats behind it.
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("riptide-metadata")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let controller = match controller_cfg {
                    Some((cfg, l)) => match Controller::start(cfg, l).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    },
                    None => None,
                };
                let agent = broker_cfg.map(|cfg| {
                    BrokerAgent::start(cfg, Arc::new(sink::CatalogSink::new(catalog, events, metrics)))
                });
                let _ = ready_tx.send(Ok((tokio::runtime::Handle::current(), agent, controller.clone())));
                let _ = stop_rx.await;
                if let Some(c) = controller {
                    let _ = tokio::time::timeout(Duration::from_secs(5), c.raft.shutdown()).await;
                }
            });
        })?;
        let (rt, agent, controller) = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the metadata thread died while starting"))??;
        Ok(Arc::new(ClusterHandle {
            rt,
            node_id,
            agent,
            controller,
            controller_addr,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Runs `fut` on the metadata thread and awaits it from any runtime (a shard's).
    pub async fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = flume::bounded(1);
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_async().await.expect("the metadata thread runs until the node stops")
    }

    /// As `run`, from a plain thread (start-up and shutdown).
    pub fn block_on<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the metadata thread runs until the node stops")
    }

    fn agent(&self) -> Result<Arc<BrokerAgent>, ControllerError> {
        self.agent.clone().ok_or_else(|| ControllerError::Internal("this node has no broker role".into()))
    }

    /// Forwards an admin change to the active controller; answered once this broker applied it.
    pub async fn admin(&self, cmd: AdminCommand) -> Result<AdminReply, ControllerError> {
        let agent = self.agent()?;
        self.run(async move { agent.admin(cmd, ADMIN_TIMEOUT).await }).await
    }

    pub async fn describe_quorum(&self) -> Result<riptide_quorum::QuorumInfo, ControllerError> {
        let agent = self.agent()?;
        self.run(async move { agent.describe_quorum().await }).await
    }

    /// Blocks until this broker is registered and caught up with the metadata log, saying so
    /// every few seconds (a quorum without a majority never gets there).
    pub fn wait_ready(&self) {
        let Some(agent) = self.agent.clone() else { return };
        let started = Instant::now();
        loop {
            let a = agent.clone();
            let ready = self.block_on(async move {
                tokio::time::timeout(Duration::from_secs(5), a.wait_ready()).await.is_ok()
            });
            if ready {
                tracing::info!(
                    "broker {} caught up with the metadata log at offset {} in {} ms",
                    self.node_id,
                    agent.applied(),
                    started.elapsed().as_millis()
                );
                return;
            }
            tracing::info!(
                "broker {} waiting for the metadata quorum ({} s; registered: {}, applied offset {})",
                self.node_id,
                started.elapsed().as_secs(),
                agent.epoch() > 0,
                agent.applied()
            );
        }
    }

    /// Controlled shutdown (SIGTERM): leadership moves off this broker and it is fenced.
    pub fn controlled_shutdown(&self, timeout: Duration) {
        let Some(agent) = self.agent.clone() else { return };
        let done = self.block_on(async move { agent.controlled_shutdown(timeout).await });
        if done {
            tracing::info!("controlled shutdown: broker {} leads no partition", self.node_id);
        } else {
            tracing::warn!(
                "controlled shutdown not confirmed by the controller within {} ms",
                timeout.as_millis()
            );
        }
    }

    /// Stops Raft and the metadata thread.
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The address other nodes reach this controller at: its entry in the voters if there is one,
/// else the bound address (loopback for an implicit one-node quorum).
fn advertise(
    bound: SocketAddr,
    voters: &std::collections::BTreeMap<riptide_quorum::NodeId, String>,
    node_id: i32,
) -> String {
    if let Some(v) = voters.get(&node_id) {
        return v.clone();
    }
    if bound.ip().is_unspecified() {
        format!("localhost:{}", bound.port())
    } else {
        bound.to_string()
    }
}

/// The cluster id a newly formed quorum writes: `cluster.id` if configured, else the one of
/// an existing single-node data directory (`meta.properties`), else a fresh random one.
fn cluster_id_hint(config: &ServerConfig) -> String {
    if !config.cluster_id.is_empty() {
        return config.cluster_id.clone();
    }
    if let Ok(text) = std::fs::read_to_string(config.data_dir.join("meta.properties")) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return id.trim().to_string();
        }
    }
    let raw = riptide_quorum::controller::new_id();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..22).map(|i| alphabet[((raw >> (i * 6)) & 63) as usize] as char).collect()
}

/// A one-node quorum's controller listens on an ephemeral port of 127.0.0.2 when it can: only
/// this process connects to it, and on 127.0.0.1 its port could be the one another program just
/// picked as "free" for its own listener (the pattern of many test suites).
fn bind_private_loopback() -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 2], 0)))
        .or_else(|_| std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
}
