//! Broker configuration: built-in defaults, overridden by a TOML file, overridden by flags.
//!
//! Names follow Kafka's broker configs where one exists (`num.partitions`,
//! `auto.create.topics.enable`, `socket.request.max.bytes`, `log.retention.ms`, ...), so a
//! Kafka operator recognises them. The TOML file uses the same dotted names as quoted keys
//! or the underscore form (`num_partitions`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::Deserialize;

pub mod security;
pub use security::{KafkaListener, Mechanism, SecurityConfig, SecurityProtocol};

/// Which kernel I/O interface the shards' event loops use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring or fail at start-up.
    Uring,
    /// epoll (the fallback), for tests and for kernels or sandboxes that block io_uring.
    Poll,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// The Kafka listeners (never empty): the first is the one the ready probe and local tools
    /// dial. A listener's advertised host and port default to its address, with `0.0.0.0`
    /// replaced by `localhost`.
    pub listeners: Vec<KafkaListener>,
    pub metrics_listen: Option<SocketAddr>,
    pub shards: usize,
    pub pin_shards: bool,
    pub io: IoMode,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub socket_request_max_bytes: u32,
    pub max_connections: usize,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions (KIP-227) kept at once.
    pub fetch_session_slots_max: usize,
    /// `max.request.partition.size.limit`: partitions in one DescribeTopicPartitions answer.
    pub request_partitions_max: i32,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub transaction_abort_check_interval_ms: u64,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub transaction_remove_expired_interval_ms: u64,
    /// The group coordinator's settings under Kafka's names (`None`: its default).
    pub groups: GroupSettings,
    pub max_in_flight_requests_per_connection: usize,
    /// `quota.window.num` and `quota.window.size.seconds`: client-quota rates are measured over
    /// this many samples of this many seconds (Kafka's 11 and 1).
    pub quota_window_num: u32,
    pub quota_window_size_seconds: u32,
    /// `telemetry.max.bytes`: the largest client-telemetry push accepted (KIP-714).
    pub telemetry_max_bytes: i32,
    pub log: TopicDefaults,
    pub cluster_id: String,
    /// `log.flush.method`: how a group commit makes appends durable.
    pub flush_method: FlushMethod,
    /// `socket.send.zerocopy`: whether Fetch answers served from memory are sent with io_uring
    /// zero-copy sends.
    pub send_zerocopy: SendZeroCopy,
    /// `socket.receive.landing`: whether large one-partition Produce record sets are received
    /// straight into the direct stage's memory (`api::landing`) rather than copied there.
    pub receive_landing: bool,
    pub cluster: ClusterConfig,
    pub rest: RestConfig,
    pub security: SecurityConfig,
}

/// Group coordinator settings a Kafka operator sets in `server.properties`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSettings {
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: Option<u64>,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: Option<i64>,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: Option<u64>,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: Option<i32>,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: Option<i32>,
    /// `group.share.enable` (KIP-932; on unless set to false).
    pub share_enable: Option<bool>,
    /// `group.share.record.lock.duration.ms`.
    pub share_record_lock_duration_ms: Option<i64>,
    /// `group.share.delivery.count.limit`.
    pub share_delivery_count_limit: Option<u16>,
    /// `group.share.partition.max.record.locks`.
    pub share_partition_max_record_locks: Option<usize>,
    /// `group.share.max.share.sessions`.
    pub share_max_share_sessions: Option<usize>,
    /// `group.share.session.timeout.ms`.
    pub share_session_timeout_ms: Option<u64>,
    /// `group.share.heartbeat.interval.ms`.
    pub share_heartbeat_interval_ms: Option<i32>,
    /// `share.coordinator.state.topic.num.partitions`.
    pub share_state_topic_partitions: Option<i32>,
    /// `share.coordinator.snapshot.update.records.per.snapshot`.
    pub share_snapshot_update_records_per_snapshot: Option<u32>,
    /// `share.coordinator.state.topic.prune.interval.ms`.
    pub share_state_topic_prune_interval_ms: Option<u64>,
}

/// The REST interface (`rest.*`), Confluent REST Proxy's API served by the broker itself.
pub use riptide_rest::RestConfig;

/// Cluster settings, under KRaft's names.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// `process.roles`: `broker`, `controller` or both (combined mode, the default).
    pub broker: bool,
    pub controller: bool,
    /// `controller.quorum.voters` (`id@host:port,...`): the static quorum. Empty with a
    /// controller role means a one-node quorum of this node alone.
    pub voters: BTreeMap<riptide_quorum::NodeId, String>,
    /// `controller.quorum.bootstrap.servers` (`host:port,...`): controllers to reach when the
    /// voters are not listed (a broker-only node, or a controller joining online).
    pub bootstrap_servers: Vec<String>,
    /// The `CONTROLLER` listener from `listeners`. A combined single node without one listens
    /// on an ephemeral loopback port (nobody else needs to reach it).
    pub controller_listen: Option<SocketAddr>,
    /// `controller.listener.names`.
    pub controller_listener_names: Vec<String>,
    /// The controller listener's protocol (`listener.security.protocol.map`): PLAINTEXT, or SSL
    /// with a client certificate required of every peer. Brokers that are not controllers
    /// reach the quorum with it too, as in Kafka.
    pub controller_protocol: SecurityProtocol,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `broker.session.timeout.ms`: a broker that has not heartbeated for this long is fenced.
    /// 2.5 s (Kafka: 9 s): a hung or cut-off broker loses its leaderships within about 3 s.
    pub session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: 500 ms (Kafka: 2 s), five heartbeats per session.
    pub heartbeat_interval_ms: u64,
    /// `broker.session.disconnect.ms`: a broker whose heartbeat connection closed (its process
    /// died, or the connection broke) and that has not heartbeated again within this long is
    /// fenced without waiting for its session to expire; 0 disables this. Riptide's own.
    pub session_disconnect_ms: u64,
    /// `controller.quorum.election.timeout.ms`: a controller that has not heard from the
    /// metadata quorum's leader for a random time between this and twice this starts an
    /// election; the leader heartbeats every quarter of it. 300 ms (Kafka: 1000 ms, with a
    /// 2000 ms fetch timeout): a crashed active controller is replaced in about 1 s (openraft's
    /// voters refuse candidates for the maximum, 600 ms, after their last heartbeat).
    pub election_timeout_ms: u64,
    /// `metadata.log.dir`: default `<data dir>/__cluster_metadata-0`.
    pub metadata_log_dir: Option<PathBuf>,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    /// 1 s (Kafka: 30 s): a hung follower holds acks=all produce for about that long; it must
    /// exceed `replica.fetch.wait.max.ms` (an idle follower is caught up once per fetch).
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.max.bytes`: per partition in a follower's fetch.
    pub replica_fetch_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`.
    pub replica_fetch_response_max_bytes: u32,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits for new data.
    pub replica_fetch_wait_max_ms: u64,
    /// `follower.replication.throttled.rate` (bytes/s): what a replica being added by a
    /// reassignment may fetch, so that a move does not starve the partitions it serves.
    pub move_throttle_bytes_per_sec: u64,
    /// `balancer.*`: the active controller's balancer.
    pub balancer: riptide_quorum::BalancerConfig,
    /// `max.partitions` (200 000 in the cluster) and `max.broker.partitions` (20 000 replicas
    /// on one broker): CreateTopics and CreatePartitions past them get POLICY_VIOLATION.
    pub limits: riptide_quorum::PartitionLimits,
    /// `balancer.interval.ms`.
    pub balancer_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            broker: true,
            controller: true,
            voters: BTreeMap::new(),
            bootstrap_servers: Vec::new(),
            controller_listen: None,
            controller_listener_names: vec!["CONTROLLER".into()],
            controller_protocol: SecurityProtocol::Plaintext,
            rack: None,
            session_timeout_ms: 2500,
            heartbeat_interval_ms: 500,
            session_disconnect_ms: 300,
            election_timeout_ms: 300,
            metadata_log_dir: None,
            replica_lag_time_max_ms: 1000,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_response_max_bytes: 10 << 20,
            replica_fetch_wait_max_ms: 500,
            move_throttle_bytes_per_sec: riptide_quorum::BalancerConfig::default().throttle_bytes_per_sec,
            balancer: riptide_quorum::BalancerConfig::default(),
            limits: riptide_quorum::PartitionLimits::default(),
            balancer_interval_ms: 10_000,
        }
    }
}

/// `1@host:port,2@host:port`.
pub fn parse_voters(value: &str) -> Result<BTreeMap<riptide_quorum::NodeId, String>, String> {
    let mut out = BTreeMap::new();
    for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, addr) = v
            .split_once('@')
            .ok_or_else(|| format!("controller.quorum.voters: {v:?} is not id@host:port"))?;
        let id: riptide_quorum::NodeId = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("controller.quorum.voters: bad node id in {v:?}"))?;
        check_host_port(addr).map_err(|e| format!("controller.quorum.voters: {e}"))?;
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("controller.quorum.voters: node {id} listed twice"));
        }
    }
    Ok(out)
}

fn check_host_port(addr: &str) -> Result<(), String> {
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{addr:?} is not host:port")),
    }
}

/// `NAME://host:port,...` into (name, host, port); an empty host means all interfaces.
pub fn parse_listeners(value: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut out = Vec::new();
    for l in value.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        let (name, rest) =
            l.split_once("://").ok_or_else(|| format!("listener {l:?} is not NAME://host:port"))?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("listener {l:?} has no port"))?;
        let port: u16 = port.parse().map_err(|_| format!("listener {l:?}: bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        out.push((name.to_string(), host.to_string(), port));
    }
    Ok(out)
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to nothing"))
}

/// How the group commit syncs (`log.flush.method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMethod {
    /// One `syncfs` when several partitions are dirty (one journal commit and device flush for
    /// all of them), `fdatasync` when one is. Syncs everything dirty on the data directory's
    /// file system, so it suits a disk given to the broker.
    Syncfs,
    /// One `fdatasync` per dirty segment file, every round.
    Fdatasync,
}

/// Whether memory-served Fetch data goes out by io_uring zero-copy send
/// (`socket.send.zerocopy`). A zero-copy send pins the pages and lets the NIC read them
/// instead of copying them into socket buffers; the kernel copies anyway when the receiver is
/// on this host (loopback, veth), where the pinning and the completion notice are extra cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendZeroCopy {
    /// Zero-copy sends on io_uring to peers that are not on a loopback address.
    Auto,
    /// Zero-copy sends on io_uring to every peer (loopback too: for tests and measurements).
    On,
    /// Ordinary sends.
    Off,
}

impl SendZeroCopy {
    /// Whether a plain-TCP connection from `peer` sends zero-copy (`uring`: the shard's event
    /// loop is io_uring; the epoll fallback has no zero-copy send).
    pub fn applies(self, uring: bool, peer: &SocketAddr) -> bool {
        match self {
            SendZeroCopy::Off => false,
            SendZeroCopy::On => uring,
            SendZeroCopy::Auto => uring && !peer.ip().to_canonical().is_loopback(),
        }
    }
}

/// Broker-level defaults for topic configs (Kafka's `log.*` broker settings).
#[derive(Clone, Debug, PartialEq)]
pub struct TopicDefaults {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: u32,
    pub message_timestamp_type_log_append: bool,
    pub durability: Durability,
    pub retention_check_interval_ms: u64,
    /// `min.insync.replicas` (broker default for topics).
    pub min_insync_replicas: usize,
    /// `log.io`: how appends reach the segment files of topics whose durability policy is
    /// `fsync` (direct writes need the sync before the ack; other policies stay buffered).
    pub log_io: riptide_engine::config::IoMode,
    /// `log.direct.stage.bytes`: with direct appends, the most bytes each partition's active
    /// segment stages in memory (and serves recent fetches from) between two writes.
    pub direct_stage_bytes: usize,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
    /// `log.direct.memory.bytes`: how much memory all direct-mode stages together may grow
    /// into (each has at least 16 KiB).
    pub direct_memory_bytes: usize,
    /// `log.direct.cache.bytes`: memory for filled stages kept to serve reads a little behind
    /// the tail (0: none).
    pub direct_cache_bytes: usize,
}

/// When an acknowledged write is answered (ARCHITECTURE.md §1, "Durability by group commit").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// acks=1/all answered after the batch is fdatasync'ed; consumers see only durable data.
    Fsync,
    /// Kafka's behaviour: answered once written (in memory on every in-sync replica).
    Replicated,
    /// Never fsync on the write path (the OS flushes).
    None,
}

impl Durability {
    pub fn parse(value: &str) -> Option<Durability> {
        match value {
            "fsync" => Some(Durability::Fsync),
            "replicated" => Some(Durability::Replicated),
            "none" => Some(Durability::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Replicated => "replicated",
            Durability::None => "none",
        }
    }
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            message_timestamp_type_log_append: false,
            durability: Durability::Fsync,
            retention_check_interval_ms: 300_000,
            min_insync_replicas: 1,
            // Measured faster here (issue 18, docs/BENCHMARKS.md); RIPTIDE_LOG_IO overrides.
            log_io: riptide_engine::config::io_mode_from_env()
                .unwrap_or(riptide_engine::config::IoMode::Direct),
            direct_memory_bytes: 256 << 20,
            direct_cache_bytes: riptide_engine::io::direct::cache::DEFAULT_CACHE_BYTES,
            direct_stage_bytes: 1 << 20,
            producer_id_expiration_ms: 86_400_000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_id: 0,
            data_dir: PathBuf::from("./data"),
            listeners: vec![KafkaListener::plaintext(SocketAddr::from(([0, 0, 0, 0], 9092)))],
            metrics_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9644))),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_shards: true,
            io: IoMode::Auto,
            auto_create_topics: true,
            num_partitions: 1,
            // -1: 3 when the cluster has 3 or more brokers, else as many as it has.
            default_replication_factor: -1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            fetch_session_slots_max: 1000,
            request_partitions_max: 2000,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_check_interval_ms: 10_000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
            transaction_remove_expired_interval_ms: 3600 * 1000,
            groups: GroupSettings::default(),
            max_in_flight_requests_per_connection: 64,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            telemetry_max_bytes: 1 << 20,
            log: TopicDefaults::default(),
            cluster_id: String::new(),
            flush_method: FlushMethod::Syncfs,
            send_zerocopy: SendZeroCopy::Auto,
            receive_landing: true,
            cluster: ClusterConfig::default(),
            rest: RestConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}

/// The TOML file: every field optional; absent ones keep the default.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(alias = "node.id")]
    pub node_id: Option<i32>,
    #[serde(alias = "data.dir", alias = "log.dirs")]
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    #[serde(alias = "advertised.listener")]
    pub advertised_listener: Option<String>,
    #[serde(alias = "metrics.listen")]
    pub metrics_listen: Option<String>,
    pub shards: Option<usize>,
    #[serde(alias = "pin.shards")]
    pub pin_shards: Option<bool>,
    pub io: Option<IoMode>,
    #[serde(alias = "auto.create.topics.enable")]
    pub auto_create_topics_enable: Option<bool>,
    #[serde(alias = "num.partitions")]
    pub num_partitions: Option<i32>,
    #[serde(alias = "socket.request.max.bytes")]
    pub socket_request_max_bytes: Option<u32>,
    #[serde(alias = "max.connections")]
    pub max_connections: Option<usize>,
    #[serde(alias = "quota.window.num")]
    pub quota_window_num: Option<u32>,
    #[serde(alias = "quota.window.size.seconds")]
    pub quota_window_size_seconds: Option<u32>,
    #[serde(alias = "telemetry.max.bytes")]
    pub telemetry_max_bytes: Option<i32>,
    #[serde(alias = "max.incremental.fetch.session.cache.slots")]
    pub max_incremental_fetch_session_cache_slots: Option<usize>,
    #[serde(alias = "max.request.partition.size.limit")]
    pub max_request_partition_size_limit: Option<i32>,
    #[serde(alias = "transaction.max.timeout.ms")]
    pub transaction_max_timeout_ms: Option<i32>,
    #[serde(alias = "transaction.abort.timed.out.transaction.cleanup.interval.ms")]
    pub transaction_abort_check_interval_ms: Option<u64>,
    #[serde(alias = "producer.id.expiration.ms")]
    pub producer_id_expiration_ms: Option<i64>,
    #[serde(alias = "transactional.id.expiration.ms")]
    pub transactional_id_expiration_ms: Option<i64>,
    #[serde(alias = "transaction.remove.expired.transaction.cleanup.interval.ms")]
    pub transaction_remove_expired_interval_ms: Option<u64>,
    #[serde(alias = "offsets.topic.segment.bytes")]
    pub offsets_topic_segment_bytes: Option<u64>,
    #[serde(alias = "offsets.retention.minutes")]
    pub offsets_retention_minutes: Option<i64>,
    #[serde(alias = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    #[serde(alias = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: Option<i32>,
    #[serde(alias = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: Option<i32>,
    #[serde(alias = "group.share.enable")]
    pub group_share_enable: Option<bool>,
    #[serde(alias = "group.share.record.lock.duration.ms")]
    pub group_share_record_lock_duration_ms: Option<i64>,
    #[serde(alias = "group.share.delivery.count.limit")]
    pub group_share_delivery_count_limit: Option<u16>,
    #[serde(alias = "group.share.partition.max.record.locks")]
    pub group_share_partition_max_record_locks: Option<usize>,
    #[serde(alias = "group.share.max.share.sessions")]
    pub group_share_max_share_sessions: Option<usize>,
    #[serde(alias = "group.share.session.timeout.ms")]
    pub group_share_session_timeout_ms: Option<u64>,
    #[serde(alias = "group.share.heartbeat.interval.ms")]
    pub group_share_heartbeat_interval_ms: Option<i32>,
    #[serde(alias = "share.coordinator.state.topic.num.partitions")]
    pub share_coordinator_state_topic_num_partitions: Option<i32>,
    #[serde(alias = "share.coordinator.snapshot.update.records.per.snapshot")]
    pub share_coordinator_snapshot_update_records_per_snapshot: Option<u32>,
    #[serde(alias = "share.coordinator.state.topic.prune.interval.ms")]
    pub share_coordinator_state_topic_prune_interval_ms: Option<u64>,
    #[serde(alias = "log.segment.bytes")]
    pub log_segment_bytes: Option<u64>,
    #[serde(alias = "log.roll.ms")]
    pub log_roll_ms: Option<i64>,
    #[serde(alias = "log.retention.ms")]
    pub log_retention_ms: Option<i64>,
    #[serde(alias = "log.retention.bytes")]
    pub log_retention_bytes: Option<i64>,
    #[serde(alias = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: Option<u64>,
    #[serde(alias = "message.max.bytes")]
    pub message_max_bytes: Option<u32>,
    #[serde(alias = "durability.policy")]
    pub durability_policy: Option<String>,
    #[serde(alias = "log.flush.method")]
    pub log_flush_method: Option<FlushMethod>,
    #[serde(alias = "socket.send.zerocopy")]
    pub socket_send_zerocopy: Option<SendZeroCopy>,
    #[serde(alias = "socket.receive.landing")]
    pub socket_receive_landing: Option<bool>,
    #[serde(alias = "log.io")]
    pub log_io: Option<String>,
    #[serde(alias = "log.direct.stage.bytes")]
    pub log_direct_stage_bytes: Option<usize>,
    #[serde(alias = "log.direct.memory.bytes")]
    pub log_direct_memory_bytes: Option<usize>,
    #[serde(alias = "log.direct.cache.bytes")]
    pub log_direct_cache_bytes: Option<usize>,
    #[serde(alias = "default.replication.factor")]
    pub default_replication_factor: Option<i16>,
    #[serde(alias = "process.roles")]
    pub process_roles: Option<String>,
    #[serde(alias = "controller.quorum.voters")]
    pub controller_quorum_voters: Option<String>,
    #[serde(alias = "controller.quorum.bootstrap.servers")]
    pub controller_quorum_bootstrap_servers: Option<String>,
    pub listeners: Option<String>,
    #[serde(alias = "advertised.listeners")]
    pub advertised_listeners: Option<String>,
    #[serde(alias = "controller.listener.names")]
    pub controller_listener_names: Option<String>,
    #[serde(alias = "broker.rack")]
    pub broker_rack: Option<String>,
    #[serde(alias = "broker.session.timeout.ms")]
    pub broker_session_timeout_ms: Option<u64>,
    #[serde(alias = "broker.heartbeat.interval.ms")]
    pub broker_heartbeat_interval_ms: Option<u64>,
    #[serde(alias = "broker.session.disconnect.ms")]
    pub broker_session_disconnect_ms: Option<u64>,
    #[serde(alias = "controller.quorum.election.timeout.ms")]
    pub controller_quorum_election_timeout_ms: Option<u64>,
    #[serde(alias = "max.partitions")]
    pub max_partitions: Option<usize>,
    #[serde(alias = "max.broker.partitions")]
    pub max_broker_partitions: Option<usize>,
    #[serde(alias = "metadata.log.dir")]
    pub metadata_log_dir: Option<PathBuf>,
    #[serde(alias = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: Option<u64>,
    #[serde(alias = "replica.fetch.max.bytes")]
    pub replica_fetch_max_bytes: Option<u32>,
    #[serde(alias = "replica.fetch.response.max.bytes")]
    pub replica_fetch_response_max_bytes: Option<u32>,
    #[serde(alias = "replica.fetch.wait.max.ms")]
    pub replica_fetch_wait_max_ms: Option<u64>,
    #[serde(alias = "follower.replication.throttled.rate")]
    pub follower_replication_throttled_rate: Option<u64>,
    #[serde(alias = "balancer.enable")]
    pub balancer_enable: Option<bool>,
    #[serde(alias = "balancer.interval.ms")]
    pub balancer_interval_ms: Option<u64>,
    #[serde(alias = "balancer.max.concurrent.moves")]
    pub balancer_max_concurrent_moves: Option<usize>,
    #[serde(alias = "balancer.threshold")]
    pub balancer_threshold: Option<f64>,
    #[serde(alias = "balancer.min.bytes.per.sec")]
    pub balancer_min_bytes_per_sec: Option<f64>,
    #[serde(alias = "balancer.node.unavailable.timeout.ms")]
    pub balancer_node_unavailable_timeout_ms: Option<u64>,
    #[serde(alias = "min.insync.replicas")]
    pub min_insync_replicas: Option<usize>,
    #[serde(alias = "cluster.id")]
    pub cluster_id: Option<String>,
    #[serde(alias = "rest.listeners")]
    pub rest_listeners: Option<String>,
    #[serde(alias = "rest.max.request.bytes")]
    pub rest_max_request_bytes: Option<usize>,
    #[serde(alias = "rest.consumer.instance.timeout.ms")]
    pub rest_consumer_instance_timeout_ms: Option<u64>,
    #[serde(alias = "listener.security.protocol.map")]
    pub listener_security_protocol_map: Option<String>,
    #[serde(alias = "inter.broker.listener.name")]
    pub inter_broker_listener_name: Option<String>,
    #[serde(alias = "ssl.keystore.type")]
    pub ssl_keystore_type: Option<String>,
    #[serde(alias = "ssl.keystore.location")]
    pub ssl_keystore_location: Option<PathBuf>,
    #[serde(alias = "ssl.certificate.location")]
    pub ssl_certificate_location: Option<PathBuf>,
    #[serde(alias = "ssl.key.location")]
    pub ssl_key_location: Option<PathBuf>,
    #[serde(alias = "ssl.key.password")]
    pub ssl_key_password: Option<String>,
    #[serde(alias = "ssl.truststore.type")]
    pub ssl_truststore_type: Option<String>,
    #[serde(alias = "ssl.truststore.location")]
    pub ssl_truststore_location: Option<PathBuf>,
    #[serde(alias = "ssl.client.auth")]
    pub ssl_client_auth: Option<String>,
    #[serde(alias = "ssl.enabled.protocols")]
    pub ssl_enabled_protocols: Option<String>,
    #[serde(alias = "sasl.enabled.mechanisms")]
    pub sasl_enabled_mechanisms: Option<String>,
    #[serde(alias = "connections.max.reauth.ms")]
    pub connections_max_reauth_ms: Option<u64>,
    #[serde(alias = "authorizer.class.name")]
    pub authorizer_class_name: Option<String>,
    #[serde(alias = "super.users")]
    pub super_users: Option<String>,
    #[serde(alias = "allow.everyone.if.no.acl.found")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    #[serde(alias = "sasl.mechanism.inter.broker.protocol")]
    pub sasl_mechanism_inter_broker_protocol: Option<String>,
    #[serde(alias = "inter.broker.sasl.username")]
    pub inter_broker_sasl_username: Option<String>,
    #[serde(alias = "inter.broker.sasl.password")]
    pub inter_broker_sasl_password: Option<String>,
    #[serde(alias = "encryption.key.file")]
    pub encryption_key_file: Option<PathBuf>,
    #[serde(alias = "encryption.key.id")]
    pub encryption_key_id: Option<String>,
}

impl ServerConfig {
    /// Applies a parsed TOML file on top of `self`.
    pub fn apply_file(&mut self, file: FileConfig) -> Result<(), String> {
        macro_rules! set {
            ($src:expr, $dst:expr) => {
                if let Some(v) = $src {
                    $dst = v;
                }
            };
        }
        set!(file.node_id, self.node_id);
        set!(file.data_dir, self.data_dir);
        if let Some(addr) = file.listen {
            self.listeners[0].addr = addr;
        }
        if file.advertised_listener.is_some() {
            self.listeners[0].advertised = file.advertised_listener;
        }
        if let Some(m) = file.metrics_listen {
            self.metrics_listen = parse_optional_addr(&m)?;
        }
        if let Some(r) = file.rest_listeners {
            self.rest.listen = parse_rest_listener(&r)?;
        }
        set!(file.rest_max_request_bytes, self.rest.max_request_bytes);
        set!(file.rest_consumer_instance_timeout_ms, self.rest.consumer_instance_timeout_ms);
        set!(file.shards, self.shards);
        set!(file.pin_shards, self.pin_shards);
        set!(file.io, self.io);
        set!(file.auto_create_topics_enable, self.auto_create_topics);
        set!(file.num_partitions, self.num_partitions);
        set!(file.socket_request_max_bytes, self.socket_request_max_bytes);
        set!(file.max_connections, self.max_connections);
        set!(file.quota_window_num, self.quota_window_num);
        set!(file.quota_window_size_seconds, self.quota_window_size_seconds);
        set!(file.telemetry_max_bytes, self.telemetry_max_bytes);
        set!(file.max_incremental_fetch_session_cache_slots, self.fetch_session_slots_max);
        set!(file.max_request_partition_size_limit, self.request_partitions_max);
        set!(file.transaction_max_timeout_ms, self.transaction_max_timeout_ms);
        set!(file.transaction_abort_check_interval_ms, self.transaction_abort_check_interval_ms);
        set!(file.transactional_id_expiration_ms, self.transactional_id_expiration_ms);
        set!(file.transaction_remove_expired_interval_ms, self.transaction_remove_expired_interval_ms);
        let g = &mut self.groups;
        g.offsets_topic_segment_bytes = file.offsets_topic_segment_bytes.or(g.offsets_topic_segment_bytes);
        g.offsets_retention_minutes = file.offsets_retention_minutes.or(g.offsets_retention_minutes);
        g.initial_rebalance_delay_ms = file.group_initial_rebalance_delay_ms.or(g.initial_rebalance_delay_ms);
        g.min_session_timeout_ms = file.group_min_session_timeout_ms.or(g.min_session_timeout_ms);
        g.max_session_timeout_ms = file.group_max_session_timeout_ms.or(g.max_session_timeout_ms);
        g.share_enable = file.group_share_enable.or(g.share_enable);
        g.share_record_lock_duration_ms =
            file.group_share_record_lock_duration_ms.or(g.share_record_lock_duration_ms);
        g.share_delivery_count_limit = file.group_share_delivery_count_limit.or(g.share_delivery_count_limit);
        g.share_partition_max_record_locks =
            file.group_share_partition_max_record_locks.or(g.share_partition_max_record_locks);
        g.share_max_share_sessions = file.group_share_max_share_sessions.or(g.share_max_share_sessions);
        g.share_session_timeout_ms = file.group_share_session_timeout_ms.or(g.share_session_timeout_ms);
        g.share_heartbeat_interval_ms =
            file.group_share_heartbeat_interval_ms.or(g.share_heartbeat_interval_ms);
        g.share_state_topic_partitions =
            file.share_coordinator_state_topic_num_partitions.or(g.share_state_topic_partitions);
        g.share_snapshot_update_records_per_snapshot = file
            .share_coordinator_snapshot_update_records_per_snapshot
            .or(g.share_snapshot_update_records_per_snapshot);
        g.share_state_topic_prune_interval_ms =
            file.share_coordinator_state_topic_prune_interval_ms.or(g.share_state_topic_prune_interval_ms);
        set!(file.log_segment_bytes, self.log.segment_bytes);
        set!(file.log_roll_ms, self.log.segment_ms);
        set!(file.log_retention_ms, self.log.retention_ms);
        set!(file.log_retention_bytes, self.log.retention_bytes);
        set!(file.log_retention_check_interval_ms, self.log.retention_check_interval_ms);
        set!(file.message_max_bytes, self.log.max_message_bytes);
        set!(file.log_flush_method, self.flush_method);
        set!(file.socket_send_zerocopy, self.send_zerocopy);
        set!(file.socket_receive_landing, self.receive_landing);
        if let Some(m) = file.log_io {
            self.log.log_io = riptide_engine::config::IoMode::parse(&m)
                .ok_or_else(|| format!("unknown log.io {m:?}: direct or buffered"))?;
        }
        set!(file.log_direct_stage_bytes, self.log.direct_stage_bytes);
        set!(file.producer_id_expiration_ms, self.log.producer_id_expiration_ms);
        set!(file.log_direct_memory_bytes, self.log.direct_memory_bytes);
        set!(file.log_direct_cache_bytes, self.log.direct_cache_bytes);
        if let Some(p) = file.durability_policy {
            self.log.durability =
                Durability::parse(&p).ok_or_else(|| format!("unknown durability.policy {p:?}"))?;
        }
        set!(file.default_replication_factor, self.default_replication_factor);
        set!(file.min_insync_replicas, self.log.min_insync_replicas);
        set!(file.cluster_id, self.cluster_id);
        let c = &mut self.cluster;
        if let Some(roles) = file.process_roles {
            c.broker = false;
            c.controller = false;
            for r in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                match r {
                    "broker" => c.broker = true,
                    "controller" => c.controller = true,
                    other => {
                        return Err(format!("process.roles: unknown role {other:?} (broker, controller)"))
                    }
                }
            }
            if !c.broker && !c.controller {
                return Err("process.roles must name broker, controller or both".into());
            }
        }
        if let Some(v) = file.controller_quorum_voters {
            c.voters = parse_voters(&v)?;
        }
        if let Some(v) = file.controller_quorum_bootstrap_servers {
            c.bootstrap_servers =
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            for s in &c.bootstrap_servers {
                check_host_port(s).map_err(|e| format!("controller.quorum.bootstrap.servers: {e}"))?;
            }
        }
        if let Some(v) = file.controller_listener_names {
            c.controller_listener_names =
                v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        }
        set!(file.broker_session_timeout_ms, c.session_timeout_ms);
        set!(file.broker_heartbeat_interval_ms, c.heartbeat_interval_ms);
        set!(file.broker_session_disconnect_ms, c.session_disconnect_ms);
        set!(file.controller_quorum_election_timeout_ms, c.election_timeout_ms);
        set!(file.max_partitions, c.limits.max_partitions);
        set!(file.max_broker_partitions, c.limits.max_broker_partitions);
        set!(file.replica_lag_time_max_ms, c.replica_lag_time_max_ms);
        set!(file.replica_fetch_max_bytes, c.replica_fetch_max_bytes);
        set!(file.replica_fetch_response_max_bytes, c.replica_fetch_response_max_bytes);
        set!(file.replica_fetch_wait_max_ms, c.replica_fetch_wait_max_ms);
        set!(file.follower_replication_throttled_rate, c.move_throttle_bytes_per_sec);
        c.balancer.throttle_bytes_per_sec = c.move_throttle_bytes_per_sec;
        set!(file.balancer_enable, c.balancer.enabled);
        set!(file.balancer_interval_ms, c.balancer_interval_ms);
        set!(file.balancer_max_concurrent_moves, c.balancer.max_concurrent_moves);
        set!(file.balancer_threshold, c.balancer.threshold);
        set!(file.balancer_min_bytes_per_sec, c.balancer.min_bytes_per_sec);
        set!(file.balancer_node_unavailable_timeout_ms, c.balancer.unavailable_timeout_ms);
        if file.broker_rack.is_some() {
            c.rack = file.broker_rack;
        }
        if file.metadata_log_dir.is_some() {
            c.metadata_log_dir = file.metadata_log_dir;
        }
        self.apply_listeners(file.listeners, file.advertised_listeners, file.listener_security_protocol_map)?;
        let sec = &mut self.security;
        let ssl = security::SslKeys {
            keystore_type: file.ssl_keystore_type,
            keystore_location: file.ssl_keystore_location,
            certificate_location: file.ssl_certificate_location,
            key_location: file.ssl_key_location,
            key_password: file.ssl_key_password,
            truststore_type: file.ssl_truststore_type,
            truststore_location: file.ssl_truststore_location,
            client_auth: file.ssl_client_auth,
            enabled_protocols: file.ssl_enabled_protocols,
        };
        if !ssl.is_empty() {
            sec.tls = Some(ssl.into_settings()?);
        }
        if let Some(m) = file.sasl_enabled_mechanisms {
            sec.sasl_mechanisms = security::parse_mechanisms(&m)?;
        }
        set!(file.connections_max_reauth_ms, sec.reauth_ms);
        if let Some(a) = file.authorizer_class_name {
            sec.authorizer = !a.trim().is_empty();
        }
        if let Some(s) = file.super_users {
            sec.super_users = security::parse_super_users(&s)?;
        }
        set!(file.allow_everyone_if_no_acl_found, sec.allow_everyone_if_no_acl_found);
        if file.inter_broker_listener_name.is_some() {
            sec.inter_broker_listener = file.inter_broker_listener_name;
        }
        if let Some(m) = file.sasl_mechanism_inter_broker_protocol {
            sec.inter_broker_mechanism = Mechanism::parse(&m).ok_or_else(|| {
                format!("sasl.mechanism.inter.broker.protocol {m}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
            })?;
        }
        if file.inter_broker_sasl_username.is_some() {
            sec.inter_broker_user = file.inter_broker_sasl_username;
        }
        if file.inter_broker_sasl_password.is_some() {
            sec.inter_broker_password = file.inter_broker_sasl_password;
        }
        if file.encryption_key_file.is_some() {
            sec.encryption_key_file = file.encryption_key_file;
        }
        if file.encryption_key_id.is_some() {
            sec.encryption_key_id = file.encryption_key_id;
        }
        self.validate()
    }

    /// `listeners`, `advertised.listeners` and `listener.security.protocol.map` together: a
    /// listener's protocol is its entry in the map, or its name when that names a protocol.
    fn apply_listeners(
        &mut self,
        listeners: Option<String>,
        advertised: Option<String>,
        map: Option<String>,
    ) -> Result<(), String> {
        let map = security::parse_protocol_map(map.as_deref().unwrap_or(""))?;
        let protocol_of = |name: &str| -> Result<SecurityProtocol, String> {
            map.iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .or_else(|| SecurityProtocol::parse(name))
                .ok_or_else(|| format!("listener {name} has no entry in listener.security.protocol.map"))
        };
        if let Some(name) = self.cluster.controller_listener_names.first() {
            let protocol = protocol_of(name).unwrap_or(SecurityProtocol::Plaintext);
            if protocol.sasl() {
                return Err(format!(
                    "listener {name}: the controller listener speaks PLAINTEXT or SSL (a client certificate is its login), not {}",
                    protocol.name()
                ));
            }
            self.cluster.controller_protocol = protocol;
        }
        if let Some(v) = listeners {
            let mut kafka = Vec::new();
            for (name, host, port) in parse_listeners(&v)? {
                let addr = resolve(&host, port)?;
                if self.cluster.controller_listener_names.contains(&name) {
                    self.cluster.controller_listen = Some(addr);
                } else if kafka.iter().any(|l: &KafkaListener| l.name == name) {
                    return Err(format!("listeners: {name} is listed twice"));
                } else {
                    kafka.push(KafkaListener { protocol: protocol_of(&name)?, name, addr, advertised: None });
                }
            }
            if !kafka.is_empty() {
                self.listeners = kafka;
            }
        } else if !map.is_empty() {
            for l in &mut self.listeners {
                l.protocol = protocol_of(&l.name)?;
            }
        }
        if let Some(v) = advertised {
            for (name, host, port) in parse_listeners(&v)? {
                if let Some(l) = self.listeners.iter_mut().find(|l| l.name == name) {
                    l.advertised = Some(format!("{host}:{port}"));
                } else if !self.cluster.controller_listener_names.contains(&name) {
                    return Err(format!("advertised.listeners: {name} is not in listeners"));
                }
            }
        }
        Ok(())
    }

    /// The first Kafka listener: what the ready probe and local tools dial.
    pub fn primary(&self) -> &KafkaListener {
        &self.listeners[0]
    }

    /// The listener replicas fetch from (`inter.broker.listener.name`, else the first
    /// PLAINTEXT one, else the first); every broker names it alike.
    pub fn inter_broker_listener(&self) -> &KafkaListener {
        let named = self.security.inter_broker_listener.as_deref();
        self.listeners
            .iter()
            .find(|l| Some(l.name.as_str()) == named)
            .or_else(|| self.listeners.iter().find(|l| l.protocol == SecurityProtocol::Plaintext))
            .unwrap_or(&self.listeners[0])
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.listeners.is_empty() {
            return Err("listeners names no Kafka listener".into());
        }
        if self.listeners.iter().any(|l| l.protocol.tls()) && self.security.tls.is_none() {
            return Err("an SSL or SASL_SSL listener needs ssl.keystore.location (or ssl.certificate.location and ssl.key.location)".into());
        }
        if let Some(name) = &self.security.inter_broker_listener {
            if !self.listeners.iter().any(|l| &l.name == name) {
                return Err(format!("inter.broker.listener.name {name} is not in listeners"));
            }
        }
        let inter = self.inter_broker_listener().protocol;
        // A single node has no followers: only a cluster needs to reach its peers.
        let clustered = self.cluster.voters.len() > 1 || !self.cluster.bootstrap_servers.is_empty();
        if clustered && inter.tls() && self.security.tls.as_ref().is_none_or(|t| t.truststore.is_none()) {
            return Err("a TLS inter-broker listener needs ssl.truststore.location (the CA that signed the brokers' certificates)".into());
        }
        if clustered && inter.sasl() && self.security.inter_broker_user.is_none() {
            return Err(
                "a SASL inter-broker listener needs inter.broker.sasl.username (and its password)".into()
            );
        }
        if self.cluster.controller_protocol.tls()
            && self.security.tls.as_ref().is_none_or(|t| t.truststore.is_none())
        {
            return Err("an SSL controller listener needs ssl.certificate.location, ssl.key.location and ssl.truststore.location (every controller connection shows a certificate signed by it)".into());
        }
        if self.security.sasl_mechanisms.is_empty() && self.listeners.iter().any(|l| l.protocol.sasl()) {
            return Err("a SASL listener needs at least one of sasl.enabled.mechanisms".into());
        }
        if self.shards == 0 || self.shards > 1024 {
            return Err(format!("shards must be 1..=1024, got {}", self.shards));
        }
        if self.num_partitions < 1 {
            return Err("num.partitions must be at least 1".into());
        }
        if self.request_partitions_max < 1 {
            return Err("max.request.partition.size.limit must be at least 1".into());
        }
        if self.rest.max_request_bytes < 1024 || self.rest.consumer_instance_timeout_ms < 100 {
            return Err("rest.max.request.bytes must be at least 1024 and rest.consumer.instance.timeout.ms at least 100".into());
        }
        if self.quota_window_num < 2 || self.quota_window_size_seconds < 1 {
            return Err("quota.window.num must be at least 2 and quota.window.size.seconds at least 1".into());
        }
        if self.telemetry_max_bytes < 1 {
            return Err("telemetry.max.bytes must be at least 1".into());
        }
        if self.socket_request_max_bytes < 1024 {
            return Err("socket.request.max.bytes must be at least 1024".into());
        }
        let c = &self.cluster;
        if self.node_id < 0 {
            return Err("node.id must be non-negative".into());
        }
        if c.controller
            && !c.voters.is_empty()
            && !c.voters.contains_key(&self.node_id)
            && c.bootstrap_servers.is_empty()
        {
            return Err(format!(
                "node {} has the controller role but is not in controller.quorum.voters (set controller.quorum.bootstrap.servers to join a running quorum)",
                self.node_id
            ));
        }
        if c.controller
            && (c.voters.len() > 1 || !c.bootstrap_servers.is_empty())
            && c.controller_listen.is_none()
        {
            return Err("a controller of a multi-node quorum needs a CONTROLLER listener in listeners".into());
        }
        if c.controller && c.voters.len() > 1 && c.controller_listen.is_some_and(|a| a.port() == 0) {
            // The other voters dial the address in controller.quorum.voters before this node
            // could tell them a port the kernel chose.
            return Err("the CONTROLLER listener of a multi-node quorum needs a fixed port, not 0".into());
        }
        if !c.controller && c.voters.is_empty() && c.bootstrap_servers.is_empty() {
            return Err(
                "a broker-only node needs controller.quorum.voters or controller.quorum.bootstrap.servers"
                    .into(),
            );
        }
        if c.move_throttle_bytes_per_sec == 0 {
            return Err("follower.replication.throttled.rate must be positive (bytes/s)".into());
        }
        if c.balancer_interval_ms < 200 || c.balancer.max_concurrent_moves == 0 {
            return Err(
                "balancer.interval.ms must be at least 200 and balancer.max.concurrent.moves at least 1"
                    .into(),
            );
        }
        if !(c.balancer.threshold.is_finite() && c.balancer.threshold > 0.0) {
            return Err("balancer.threshold must be a positive fraction (0.2 = 20%)".into());
        }
        if c.heartbeat_interval_ms == 0 || c.session_timeout_ms <= c.heartbeat_interval_ms {
            return Err("broker.session.timeout.ms must exceed broker.heartbeat.interval.ms (> 0)".into());
        }
        if !(100..=60_000).contains(&c.election_timeout_ms) {
            return Err("controller.quorum.election.timeout.ms must be between 100 and 60000".into());
        }
        if c.replica_lag_time_max_ms <= c.replica_fetch_wait_max_ms {
            return Err("replica.lag.time.max.ms must exceed replica.fetch.wait.max.ms".into());
        }
        Ok(())
    }

    /// Records the address a Kafka listener was bound to: a configured port 0 becomes the
    /// kernel's choice, here and in an advertised listener that also said port 0, so that the
    /// broker registers and advertises the port it really has.
    pub fn bind_kafka_listener(&mut self, index: usize, bound: SocketAddr) {
        let l = &mut self.listeners[index];
        if l.addr.port() == 0 {
            l.addr.set_port(bound.port());
        }
        if let Some(host) = l.advertised.as_deref().and_then(|a| a.strip_suffix(":0")) {
            l.advertised = Some(format!("{host}:{}", bound.port()));
        }
    }

    /// The host and port clients should connect to on the first listener.
    pub fn advertised(&self) -> (String, i32) {
        self.primary().advertised()
    }
}

/// `"off"` or an empty string disables a listener.
pub fn parse_optional_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    if value.is_empty() || value == "off" || value == "none" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|e| format!("bad address {value:?}: {e}"))
}

/// `rest.listeners`: `http://host:port` (Confluent's form), a bare `host:port`, or `off`.
/// One listener: a second one would only add a port, not a protocol (no TLS yet).
pub fn parse_rest_listener(value: &str) -> Result<Option<SocketAddr>, String> {
    let v = value.trim();
    if v.starts_with("https://") {
        return Err(format!("rest.listeners {v:?}: https needs TLS, which the broker does not have yet"));
    }
    let v = v.strip_prefix("http://").unwrap_or(v).trim_end_matches('/');
    if v.contains(',') {
        return Err(format!("rest.listeners {value:?}: one listener only"));
    }
    if v.is_empty() || v == "off" || v == "none" {
        return Ok(None);
    }
    match v.to_socket_addrs() {
        Ok(mut addrs) => {
            addrs.next().map(Some).ok_or_else(|| format!("rest.listeners {value:?}: no address"))
        }
        Err(e) => Err(format!("rest.listeners {value:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_with_kafka_names() {
        let file: FileConfig = toml::from_str(
            r#"
            "num.partitions" = 3
            data_dir = "/tmp/x"
            "log.retention.ms" = -1
            metrics_listen = "off"
            "#,
        )
        .expect("parse");
        let mut c = ServerConfig::default();
        c.apply_file(file).expect("apply");
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log.retention_ms, -1);
        assert_eq!(c.metrics_listen, None);
    }

    #[test]
    fn zero_copy_sends_skip_loopback_peers_unless_forced() {
        let file: FileConfig = toml::from_str(r#""socket.send.zerocopy" = "on""#).expect("parse");
        let mut c = ServerConfig::default();
        assert_eq!(c.send_zerocopy, SendZeroCopy::Auto);
        c.apply_file(file).expect("apply");
        assert_eq!(c.send_zerocopy, SendZeroCopy::On);
        assert!(toml::from_str::<FileConfig>(r#""socket.send.zerocopy" = "always""#).is_err());
        let mut c = ServerConfig::default();
        assert!(c.receive_landing, "on by default");
        let file: FileConfig = toml::from_str(r#""socket.receive.landing" = false"#).expect("parse");
        c.apply_file(file).expect("apply");
        assert!(!c.receive_landing);
        let peer = |a: &str| a.parse::<SocketAddr>().expect("addr");
        let (v4, v6, mapped, remote) =
            (peer("127.0.0.2:1"), peer("[::1]:1"), peer("[::ffff:127.0.0.1]:1"), peer("10.0.0.2:1"));
        for local in [v4, v6, mapped] {
            assert!(!SendZeroCopy::Auto.applies(true, &local), "{local}");
            assert!(SendZeroCopy::On.applies(true, &local), "{local}");
        }
        assert!(SendZeroCopy::Auto.applies(true, &remote));
        assert!(!SendZeroCopy::Off.applies(true, &remote));
        // The epoll fallback has no zero-copy send.
        assert!(!SendZeroCopy::On.applies(false, &remote) && !SendZeroCopy::Auto.applies(false, &remote));
    }

    #[test]
    fn kraft_names_configure_the_cluster() {
        let file: FileConfig = toml::from_str(
            r#"
            "node.id" = 2
            "process.roles" = "broker,controller"
            "controller.quorum.voters" = "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093"
            listeners = "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
            "advertised.listeners" = "PLAINTEXT://localhost:29092"
            "broker.rack" = "r1"
            "#,
        )
        .expect("parse");
        let mut c = ServerConfig::default();
        c.apply_file(file).expect("apply");
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(c.primary().addr, "127.0.0.1:29092".parse().expect("addr"));
        assert_eq!(c.cluster.controller_listen, Some("127.0.0.1:29093".parse().expect("addr")));
        assert_eq!(c.advertised(), ("localhost".to_string(), 29092));
        assert_eq!(c.cluster.rack.as_deref(), Some("r1"));
        let bad: FileConfig = toml::from_str(
            r#""node.id" = 9
            "controller.quorum.voters" = "1@127.0.0.1:19093"
            listeners = "CONTROLLER://127.0.0.1:1""#,
        )
        .expect("parse");
        assert!(ServerConfig::default().apply_file(bad).is_err(), "a controller must be a voter");
    }

    #[test]
    fn port_zero_listeners_advertise_the_bound_port() {
        let file: FileConfig = toml::from_str(
            r#"
            listeners = "PLAINTEXT://127.100.0.1:0"
            "advertised.listeners" = "PLAINTEXT://broker.example:0"
            "#,
        )
        .expect("parse");
        let mut c = ServerConfig::default();
        c.apply_file(file).expect("apply");
        c.bind_kafka_listener(0, "127.100.0.1:40123".parse().expect("addr"));
        assert_eq!(c.primary().addr, "127.100.0.1:40123".parse().expect("addr"));
        assert_eq!(c.advertised(), ("broker.example".to_string(), 40123));
        let mut plain = ServerConfig {
            listeners: vec![KafkaListener::plaintext("127.0.0.1:0".parse().expect("addr"))],
            ..Default::default()
        };
        plain.bind_kafka_listener(0, "127.0.0.1:40999".parse().expect("addr"));
        assert_eq!(plain.advertised(), ("127.0.0.1".to_string(), 40999));
        // A fixed port stays as configured.
        let mut fixed = ServerConfig::default();
        fixed.bind_kafka_listener(0, "0.0.0.0:9092".parse().expect("addr"));
        assert_eq!(fixed.advertised(), ("localhost".to_string(), 9092));
    }

    #[test]
    fn a_voter_of_a_multi_node_quorum_needs_a_fixed_controller_port() {
        let file: FileConfig = toml::from_str(
            r#"
            "node.id" = 1
            "process.roles" = "broker,controller"
            "controller.quorum.voters" = "1@127.0.0.1:19093,2@127.0.0.1:29093"
            listeners = "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"
            "#,
        )
        .expect("parse");
        let mut c = ServerConfig::default();
        let err = c.apply_file(file).expect_err("port 0 refused");
        assert!(err.contains("fixed port"), "{err}");
    }

    #[test]
    fn several_listeners_with_their_protocols() {
        let file: FileConfig = toml::from_str(
            r#"
            listeners = "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,EXTERNAL://0.0.0.0:9094"
            "listener.security.protocol.map" = "EXTERNAL:SASL_SSL"
            "advertised.listeners" = "EXTERNAL://kafka.example:9094"
            "ssl.keystore.location" = "/etc/riptide/broker.pem"
            "#,
        )
        .expect("parse");
        let mut c = ServerConfig::default();
        c.apply_file(file).expect("apply");
        let protocols: Vec<_> = c.listeners.iter().map(|l| l.protocol).collect();
        assert_eq!(
            protocols,
            [SecurityProtocol::Plaintext, SecurityProtocol::Ssl, SecurityProtocol::SaslSsl]
        );
        assert_eq!(c.listeners[2].advertised(), ("kafka.example".to_string(), 9094));
        assert_eq!(c.inter_broker_listener().name, "PLAINTEXT");
        let no_key: FileConfig = toml::from_str(r#"listeners = "SSL://127.0.0.1:0""#).expect("parse");
        let err = ServerConfig::default().apply_file(no_key).expect_err("SSL without a key");
        assert!(err.contains("ssl.keystore.location"), "{err}");
        let unmapped: FileConfig = toml::from_str(r#"listeners = "INTERNAL://127.0.0.1:0""#).expect("parse");
        let err = ServerConfig::default().apply_file(unmapped).expect_err("no protocol");
        assert!(err.contains("listener.security.protocol.map"), "{err}");
    }

    #[test]
    fn controller_listener_is_plaintext_or_ssl_with_a_truststore() {
        let base = r#"
            "node.id" = 1
            "controller.quorum.voters" = "1@127.0.0.1:19093,2@127.0.0.2:19093"
            listeners = "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19093"
            "ssl.certificate.location" = "/etc/riptide/node.pem"
            "ssl.key.location" = "/etc/riptide/node.key"
        "#;
        let parse = |extra: &str| toml::from_str::<FileConfig>(&format!("{base}{extra}")).expect("parse");
        let mut c = ServerConfig::default();
        c.apply_file(parse("")).expect("plaintext");
        assert_eq!(c.cluster.controller_protocol, SecurityProtocol::Plaintext);
        let err = ServerConfig::default()
            .apply_file(parse(r#""listener.security.protocol.map" = "CONTROLLER:SSL,PLAINTEXT:PLAINTEXT""#))
            .expect_err("no truststore");
        assert!(err.contains("ssl.truststore.location"), "{err}");
        let mut c = ServerConfig::default();
        c.apply_file(parse(
            r#""listener.security.protocol.map" = "CONTROLLER:SSL,PLAINTEXT:PLAINTEXT"
            "ssl.truststore.location" = "/etc/riptide/ca.pem""#,
        ))
        .expect("SSL");
        assert_eq!(c.cluster.controller_protocol, SecurityProtocol::Ssl);
        let err = ServerConfig::default()
            .apply_file(parse(
                r#""listener.security.protocol.map" = "CONTROLLER:SASL_SSL,PLAINTEXT:PLAINTEXT""#,
            ))
            .expect_err("SASL");
        assert!(err.contains("PLAINTEXT or SSL"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }
}
