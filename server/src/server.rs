//! The composition root: binds the listeners, starts this node's part of the cluster (the
//! metadata thread: controller and/or broker agent) and waits until the broker has caught up
//! with the metadata log, then starts the shards with what runs on each (the accept loop, and
//! on shard 0 the group coordinator and the metadata-change task), the metrics listener, and
//! shuts it all down (controlled shutdown first). Nothing below this module starts anything
//! above it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::sync::RwLock;
use std::time::Duration;

use riptide_quorum::Change;

use crate::api::ApiCtx;
use crate::broker::Broker;
use crate::catalog::{self, Catalog};
use crate::cluster::ClusterHandle;
use crate::config::{SecurityProtocol, ServerConfig};
use crate::coordinator::txn::TxnCoordinator;
use crate::coordinator::Coordinator;
use crate::metrics::Metrics;
use crate::shard::router::Router;
use crate::shard::StartHook;
use crate::{coordinator, metrics, net, replication, shard};

pub struct RunningBroker {
    pub broker: Arc<Broker>,
    /// Where every listener is bound (a configured port 0 replaced by the kernel's choice).
    pub bound: Bound,
    /// The Kafka listener (`bound.kafka`).
    pub addr: SocketAddr,
    /// The REST interface's address (`rest.listeners`), when it is on.
    pub rest_addr: Option<SocketAddr>,
    router: Arc<Router>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RunningBroker {
    /// Clean shutdown: stop accepting, finish in-flight work, fsync and close every log.
    pub fn shutdown(self) {
        self.broker.cluster.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT);
        self.broker.shutting_down.store(true, Ordering::SeqCst);
        self.router.shutdown_all();
        for t in self.threads {
            let _ = t.join();
        }
        self.broker.cluster.stop();
    }

    /// As after `kill -9` (for tests): the shards stop without a controlled shutdown, so the
    /// controller fences this broker only when its session expires.
    pub fn crash(self) {
        self.broker.shutting_down.store(true, Ordering::SeqCst);
        self.router.shutdown_all();
        for t in self.threads {
            let _ = t.join();
        }
        self.broker.cluster.stop();
    }
}

const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Every listener of a node as bound: what `--ready-file` reports and the start-up log lists.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// The first Kafka listener (what the ready probe dials).
    pub kafka: Option<SocketAddr>,
    /// Every Kafka listener by name.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The first Kafka listener without TLS: where the node probes itself with ApiVersions.
    pub probe_target: Option<SocketAddr>,
    pub controller: Option<SocketAddr>,
    pub rest: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

impl Bound {
    /// One log line per listener, so that whoever reads the log knows where to connect.
    pub fn log(&self) {
        let kafka = self.listeners.iter().map(|(n, a)| (n.as_str(), Some(a.to_string())));
        let others = [
            ("CONTROLLER", self.controller.map(|a| a.to_string())),
            ("REST", self.rest.map(|a| format!("http://{a}"))),
            ("metrics", self.metrics.map(|a| format!("http://{a}/metrics"))),
        ];
        for (name, addr) in kafka.chain(others) {
            if let Some(addr) = addr {
                tracing::info!("listener {name} bound to {addr}");
            }
        }
    }

    /// Logs every listener, and once the Kafka listener answers ApiVersions (a connect alone
    /// proves nothing) writes the ready file atomically, if one was asked for.
    pub fn announce(&self, node_id: i32, ready_file: Option<&std::path::Path>) -> std::io::Result<()> {
        self.log();
        // The probe speaks plain TCP, so it dials the first listener without TLS (ApiVersions
        // is answered before SASL); a node with TLS listeners only is not probed.
        if let Some(kafka) = self.probe_target {
            let target = crate::bind::local_dial_addr(kafka);
            riptide_client::launch::probe_api_versions(target, Duration::from_secs(10))
                .map_err(|e| std::io::Error::new(e.kind(), format!("own listener {target}: {e}")))?;
        }
        if let Some(path) = ready_file {
            self.ready(node_id)
                .write_atomically(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("ready file {}: {e}", path.display())))?;
        }
        Ok(())
    }

    pub fn ready(&self, node_id: i32) -> riptide_client::launch::Ready {
        riptide_client::launch::Ready {
            node_id,
            pid: std::process::id(),
            kafka: self.kafka,
            controller: self.controller,
            rest: self.rest,
            metrics: self.metrics,
            listeners: self.listeners.iter().cloned().collect(),
        }
    }
}

/// A controller-only node (`process.roles=controller`): the metadata quorum, no Kafka listener.
pub struct RunningController {
    pub cluster: Arc<ClusterHandle>,
    pub bound: Bound,
}

impl RunningController {
    pub fn shutdown(self) {
        self.cluster.stop();
    }
}

pub fn start_controller(config: ServerConfig) -> std::io::Result<RunningController> {
    config.validate().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let (events, _) = flume::unbounded();
    let cluster =
        ClusterHandle::start(&config, Arc::new(RwLock::new(Catalog::default())), events, metrics.clone())?;
    metrics.set_cluster_sources(crate::metrics::ClusterSources {
        controller: cluster.controller.as_ref().map(|c| c.metrics.clone()),
        agent: None,
    });
    let bound = Bound {
        controller: cluster.controller_addr,
        metrics: serve_metrics(config.metrics_listen, metrics)?,
        ..Bound::default()
    };
    Ok(RunningController { cluster, bound })
}

fn serve_metrics(listen: Option<SocketAddr>, metrics: Arc<Metrics>) -> std::io::Result<Option<SocketAddr>> {
    let Some(m) = listen else { return Ok(None) };
    metrics::serve(m, metrics)
        .map(Some)
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {m}: {e}")))
}

pub fn start(mut config: ServerConfig) -> std::io::Result<RunningBroker> {
    config.validate().map_err(std::io::Error::other)?;
    // Said before any listener exists, so whoever can connect can also read it in the log.
    tracing::info!("shards use the {:?} driver", shard::probe_driver(config.io)?);
    riptide_engine::io::direct::set_memory_budget(config.log.direct_memory_bytes);
    riptide_engine::io::direct::cache::set_budget(config.log.direct_cache_bytes);
    tracing::info!(
        "appends: log.io={} for topics with durability.policy=fsync, buffered for others",
        config.log.log_io.name()
    );
    let specs = listener_specs(&config)?;
    let mut bound_listeners = Vec::with_capacity(config.listeners.len());
    for i in 0..config.listeners.len() {
        let sockets = bind_with_retry(config.listeners[i].addr, config.shards)?;
        // A configured port 0 is now a real one: the broker registers and advertises that.
        config.bind_kafka_listener(i, sockets[0].local_addr()?);
        bound_listeners.push(sockets);
    }
    let addr = config.primary().addr;
    let bound_all: Vec<(String, SocketAddr)> =
        config.listeners.iter().map(|l| (l.name.clone(), l.addr)).collect();
    // One socket of every listener per shard.
    let mut per_shard: Vec<Vec<(Arc<crate::security::Listener>, std::net::TcpListener)>> =
        (0..config.shards).map(|_| Vec::new()).collect();
    for (spec, sockets) in specs.iter().zip(bound_listeners) {
        for (shard, socket) in per_shard.iter_mut().zip(sockets) {
            shard.push((spec.clone(), socket));
        }
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let catalog = Arc::new(RwLock::new(Catalog::default()));
    let (events_tx, events_rx) = flume::unbounded::<Change>();
    let cluster = ClusterHandle::start(&config, catalog.clone(), events_tx, metrics.clone())?;
    metrics.set_cluster_sources(crate::metrics::ClusterSources {
        controller: cluster.controller.as_ref().map(|c| c.metrics.clone()),
        agent: cluster.agent.clone(),
    });
    cluster.wait_ready();
    import_legacy_topics(&config, &cluster, &catalog)?;
    let cluster_id = catalog
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .cluster_id
        .clone()
        .or_else(|| cluster.agent.as_ref().and_then(|a| a.image().cluster_id))
        .unwrap_or_default();
    let broker = Arc::new(Broker::new(config, catalog, cluster, cluster_id, metrics)?);
    check_encrypted_topics(&broker)?;
    let metrics_addr = serve_metrics(broker.config.metrics_listen, broker.metrics.clone())?;
    let owner = broker.clone();
    let owns = Box::new(move |p: i32| {
        owner.topic(coordinator::offsets_log::OFFSETS_TOPIC).is_some_and(|t| owner.leads(&t, p))
    });
    let coordinator = Arc::new(Coordinator::owning(group_config(&broker.config.groups), owns));
    let owner = broker.clone();
    let owns_txn = Box::new(move |p: i32| {
        owner.topic(coordinator::txn::log::TXN_TOPIC).is_some_and(|t| owner.leads(&t, p))
    });
    let txn_config = crate::coordinator::txn::state::TxnConfig {
        max_timeout_ms: broker.config.transaction_max_timeout_ms,
        abort_check_interval_ms: broker.config.transaction_abort_check_interval_ms,
        id_expiration_ms: broker.config.transactional_id_expiration_ms,
        remove_expired_interval_ms: broker.config.transaction_remove_expired_interval_ms,
        ..Default::default()
    };
    let txn = Arc::new(TxnCoordinator::new(txn_config, owns_txn, coordinator.clone()));
    let (roles_tx, roles_rx) = flume::bounded::<()>(1);
    type ShardListeners = Vec<(Arc<crate::security::Listener>, std::net::TcpListener)>;
    let seed = crate::clock::now_ms() as u64 ^ u64::from(std::process::id()) << 32;
    let fetch_sessions = Arc::new(crate::api::fetch_session::FetchSessionCache::new(
        broker.config.fetch_session_slots_max,
        seed,
    ));
    let shares = Arc::new(coordinator::shares::Shares::new(share_config(&broker.config.groups)));
    let start: StartHook<ShardListeners> = Arc::new(move |shard, listeners| {
        let ctx =
            ApiCtx::new(shard, coordinator.clone(), txn.clone(), fetch_sessions.clone(), shares.clone());
        if shard.id == 0 {
            compio::runtime::spawn(coordinator::shares::background(
                shard.clone(),
                shares.clone(),
                coordinator.clone(),
            ))
            .detach();
            compio::runtime::spawn(coordinator::background(shard.clone(), coordinator.clone())).detach();
            compio::runtime::spawn(coordinator::txn::background(shard.clone(), txn.clone())).detach();
            let (events, roles) = (events_rx.clone(), roles_tx.clone());
            compio::runtime::spawn(apply_metadata_changes(shard.clone(), events, roles)).detach();
            compio::runtime::spawn(replication::fetcher::manage(shard.clone(), roles_rx.clone())).detach();
            compio::runtime::spawn(replication::load::run(shard.clone())).detach();
        }
        compio::runtime::spawn(replication::isr::run(shard.clone())).detach();
        for (spec, listener) in listeners {
            let listener = compio::net::TcpListener::from_std(listener)?;
            compio::runtime::spawn(net::listener::accept_loop(ctx.clone(), listener, spec)).detach();
        }
        Ok(())
    });
    let (router, threads) = shard::spawn_shards(broker.clone(), per_shard, start)?;
    // The REST interface is a client of this broker: it dials the first PLAINTEXT listener
    // (acting as User:ANONYMOUS there, under the ACLs); it has no TLS or SASL of its own.
    let rest_dial = broker.config.listeners.iter().find(|l| l.protocol == SecurityProtocol::Plaintext);
    let mut rest_config = broker.config.rest.clone();
    if rest_dial.is_none() && rest_config.listen.is_some() {
        tracing::warn!("REST interface off: it dials a PLAINTEXT listener and this broker has none");
        rest_config.listen = None;
    }
    let rest_addr = match rest_config.listen {
        None => None,
        Some(listen) => {
            let dial = crate::bind::local_dial_addr(rest_dial.map_or(addr, |l| l.addr));
            let served = crate::bind::bind_retrying(listen)
                .and_then(|l| riptide_rest::serve(&rest_config, l, dial))
                .map_err(|e| std::io::Error::new(e.kind(), format!("REST listener {listen}: {e}")))?;
            Some(served)
        }
    };
    let bound = Bound {
        kafka: Some(addr),
        probe_target: broker.config.listeners.iter().find(|l| !l.protocol.tls()).map(|l| l.addr),
        listeners: bound_all,
        controller: broker.cluster.controller_addr,
        rest: rest_addr,
        metrics: metrics_addr,
    };
    Ok(RunningBroker { broker, bound, addr, rest_addr, router, threads })
}

/// Encryption at rest fails loudly at start, never later with garbage: every encrypted topic
/// must have its key loaded, and the first sealed batch of each local segment must open.
fn check_encrypted_topics(broker: &Broker) -> std::io::Result<()> {
    let topics = broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all();
    let mut checked = 0;
    for t in topics {
        let setting = t.configs.get("encryption.at.rest").filter(|v| *v != "false");
        let Some(setting) = setting else { continue };
        let fail = |e: String| std::io::Error::other(format!("encryption at rest, topic {}: {e}", t.name));
        broker.security.sealer_for(Some(if setting == "true" { "" } else { setting })).map_err(fail)?;
        for p in 0..t.partitions {
            let dir = broker.partition_dir(&t.name, p);
            checked +=
                crate::security::at_rest::check_partition_dir(broker.security.keyring.as_deref(), &dir)
                    .map_err(fail)?;
        }
    }
    if checked > 0 {
        tracing::info!(
            "encryption at rest: the first sealed batch of {checked} segment(s) opens with the keys loaded"
        );
    }
    Ok(())
}

/// What each Kafka listener's connections need: its name, protocol and TLS identity (loaded
/// now, so that a bad certificate stops the start).
fn listener_specs(config: &ServerConfig) -> std::io::Result<Vec<Arc<crate::security::Listener>>> {
    let tls = match &config.security.tls {
        Some(t) if config.listeners.iter().any(|l| l.protocol.tls()) => Some(Arc::new(
            crate::security::tls::TlsAcceptor::new(t.clone())
                .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?,
        )),
        _ => None,
    };
    Ok(config
        .listeners
        .iter()
        .map(|l| {
            Arc::new(crate::security::Listener {
                name: l.name.clone(),
                protocol: l.protocol,
                tls: if l.protocol.tls() { tls.clone() } else { None },
            })
        })
        .collect())
}

/// Shard work for applied metadata: delete a deleted topic's logs on every shard, reconfigure
/// a topic's logs after its configs changed, and after leader, ISR or replica changes have
/// every shard take on its partitions' new roles and the replica fetchers follow them.
async fn apply_metadata_changes(ctx: shard::Ctx, events: flume::Receiver<Change>, roles: flume::Sender<()>) {
    while let Ok(first) = events.recv_async().await {
        let mut roles_changed = false;
        for change in std::iter::once(first).chain(events.try_iter()) {
            match change {
                Change::TopicDeleted { name, id, partitions } => {
                    let topic: Arc<str> = Arc::from(name.as_str());
                    shard::router::broadcast_and_wait(&ctx, |reply| {
                        shard::mailbox::ShardMsg::DropTopic(topic.clone(), id, partitions, reply)
                    })
                    .await;
                }
                Change::TopicConfigsChanged(name) => shard::router::broadcast_reconfigure(&ctx, &name),
                // The topics' defaults may have changed: every topic takes them again.
                Change::BrokerConfigsChanged => {
                    for topic in ctx.broker.catalog.read().unwrap_or_else(|e| e.into_inner()).all() {
                        shard::router::broadcast_reconfigure(&ctx, &topic.name);
                    }
                }
                Change::LeaderChanged { .. } | Change::TopicCreated(_) | Change::PartitionsAdded(_) => {
                    roles_changed = true
                }
                Change::BrokersChanged
                | Change::SecurityChanged
                | Change::ClientQuotasChanged
                | Change::ClientMetricsChanged
                | Change::GroupConfigsChanged => {}
            }
        }
        if roles_changed {
            shard::router::broadcast_roles_changed(&ctx);
            let _ = roles.try_send(());
        }
    }
}

/// A data directory from before the metadata quorum has its topics in `topics.json`: they are
/// created in the quorum with their ids, on this broker, then the file is renamed so that it
/// is imported once.
fn import_legacy_topics(
    config: &ServerConfig,
    cluster: &Arc<ClusterHandle>,
    catalog: &Arc<RwLock<Catalog>>,
) -> std::io::Result<()> {
    let legacy = catalog::read_legacy_topics(&config.data_dir)?;
    if legacy.is_empty() {
        return Ok(());
    }
    let node = config.node_id;
    for t in legacy {
        if catalog.read().unwrap_or_else(|e| e.into_inner()).get(&t.name).is_some() {
            continue;
        }
        let cmd = riptide_quorum::AdminCommand::CreateTopic {
            name: t.name.clone(),
            partitions: t.partitions,
            replication_factor: 1,
            configs: t.configs.clone(),
            assignment: Some(vec![vec![node]; t.partitions.max(0) as usize]),
            id: Some(t.id),
            validate_only: false,
        };
        let c = cluster.clone();
        match cluster.block_on(async move {
            c.agent.clone().expect("a broker node").admin(cmd, crate::cluster::ADMIN_TIMEOUT).await
        }) {
            Ok(_) | Err(riptide_quorum::ControllerError::TopicExists(_)) => {
                tracing::info!(
                    "imported topic {} ({} partition(s)) into the metadata quorum",
                    t.name,
                    t.partitions
                )
            }
            Err(e) => return Err(std::io::Error::other(format!("importing topic {}: {e}", t.name))),
        }
    }
    let from = config.data_dir.join("topics.json");
    std::fs::rename(&from, config.data_dir.join("topics.json.imported"))?;
    std::fs::File::open(&config.data_dir)?.sync_all()
}

/// A predecessor killed with SIGKILL can hold its listening socket for a moment after it is
/// reaped (io_uring tears its ring down asynchronously), so EADDRINUSE is retried for a few
/// seconds before giving up.
fn bind_with_retry(addr: SocketAddr, shards: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut attempts = 0;
    loop {
        match net::listener::bind_reuseport(addr, shards) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 50 => {
                if attempts == 0 {
                    tracing::warn!("{addr} is in use; retrying for up to 5 s");
                }
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Blocks SIGTERM and SIGINT in every thread (call before starting any) so that
/// `wait_for_signal` receives them synchronously.
pub fn block_shutdown_signals() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

pub fn wait_for_signal() -> i32 {
    // SAFETY: as above; sigwait writes the received signal number into `sig`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    }
}

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (default `info`, openraft's own
/// chatter from `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The coordinator's settings: Kafka's defaults unless the operator set them.
fn share_config(s: &crate::config::GroupSettings) -> coordinator::shares::ShareConfig {
    let d = coordinator::shares::ShareConfig::default();
    coordinator::shares::ShareConfig {
        enabled: s.share_enable.unwrap_or(d.enabled),
        record_lock_duration_ms: s.share_record_lock_duration_ms.unwrap_or(d.record_lock_duration_ms).max(1),
        delivery_count_limit: s.share_delivery_count_limit.unwrap_or(d.delivery_count_limit).max(1),
        partition_max_record_locks: s
            .share_partition_max_record_locks
            .unwrap_or(d.partition_max_record_locks)
            .max(1),
        max_share_sessions: s.share_max_share_sessions.unwrap_or(d.max_share_sessions).max(1),
        session_timeout_ms: s.share_session_timeout_ms.unwrap_or(d.session_timeout_ms).max(1),
        heartbeat_interval_ms: s.share_heartbeat_interval_ms.unwrap_or(d.heartbeat_interval_ms).max(1),
        state_topic_partitions: s.share_state_topic_partitions.unwrap_or(d.state_topic_partitions).max(1),
        snapshot_update_records_per_snapshot: s
            .share_snapshot_update_records_per_snapshot
            .unwrap_or(d.snapshot_update_records_per_snapshot),
        state_topic_prune_interval_ms: s
            .share_state_topic_prune_interval_ms
            .unwrap_or(d.state_topic_prune_interval_ms)
            .max(1),
        ..d
    }
}

fn group_config(s: &crate::config::GroupSettings) -> coordinator::GroupConfig {
    let d = coordinator::GroupConfig::default();
    coordinator::GroupConfig {
        offsets_topic_segment_bytes: s.offsets_topic_segment_bytes.unwrap_or(d.offsets_topic_segment_bytes),
        offsets_retention_ms: s
            .offsets_retention_minutes
            .map_or(d.offsets_retention_ms, |m| m.saturating_mul(60_000)),
        initial_rebalance_delay_ms: s.initial_rebalance_delay_ms.unwrap_or(d.initial_rebalance_delay_ms),
        min_session_timeout_ms: s.min_session_timeout_ms.unwrap_or(d.min_session_timeout_ms),
        max_session_timeout_ms: s.max_session_timeout_ms.unwrap_or(d.max_session_timeout_ms),
        ..d
    }
}
