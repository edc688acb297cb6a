//! State shared by every shard of one broker process: configuration, the topic catalog (the
//! applied metadata image), the way to the metadata quorum, metrics and the producer-id
//! allocator. It knows nothing of shards, connections or groups.
//!
//! Nothing here is touched on the per-record hot path except a read lock on the catalog to find
//! a topic (one `Arc` clone). Partition data lives only in the owning shard.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use riptide_engine::IoBackend;

use riptide_quorum::{AdminCommand, ControllerError};

use crate::catalog::{self, Catalog, TopicMeta};
use crate::cluster::ClusterHandle;
use crate::config::{IoMode, ServerConfig};
use crate::metrics::Metrics;

/// Why an admin change to the catalog was refused, with Kafka's error code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    InvalidTopic(String),
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
    #[error("the metadata quorum did not answer in time")]
    Timeout,
    #[error("{0}")]
    Unknown(String),
}

impl From<ControllerError> for AdminError {
    fn from(e: ControllerError) -> AdminError {
        match e {
            ControllerError::TopicExists(m) => AdminError::TopicExists(
                m.trim_start_matches("Topic '").trim_end_matches("' already exists.").to_string(),
            ),
            ControllerError::UnknownTopic(_) => AdminError::UnknownTopic,
            ControllerError::InvalidPartitions(m) => AdminError::InvalidPartitions(m),
            ControllerError::InvalidReplicationFactor(m) => AdminError::InvalidReplicationFactor(m),
            ControllerError::InvalidReplicaAssignment(m) => AdminError::InvalidReplicaAssignment(m),
            ControllerError::PolicyViolation(m) => AdminError::PolicyViolation(m),
            ControllerError::InvalidRequest(m) => AdminError::InvalidConfig(m),
            ControllerError::Timeout | ControllerError::NotController { .. } => AdminError::Timeout,
            other => AdminError::Unknown(other.to_string()),
        }
    }
}

pub struct Broker {
    pub config: ServerConfig,
    pub catalog: Arc<RwLock<Catalog>>,
    pub cluster: Arc<ClusterHandle>,
    pub metrics: Arc<Metrics>,
    producer_ids: Mutex<ProducerIdBlock>,
    pub shutting_down: AtomicBool,
    pub cluster_id: String,
    pub engine_io: IoBackend,
    pub security: crate::security::Security,
    /// The client quotas in force (shared with the catalog, which applies them).
    pub quotas: Arc<crate::quota::Quotas>,
}

struct ProducerIdBlock {
    next: i64,
    limit: i64,
    path: PathBuf,
}

/// Producer ids are handed out from blocks reserved on disk, so ids are never reused after a
/// restart even though most of a block may be skipped.
const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    /// A topic's `encryption.at.rest` may go from `old` to `new` (values other than "false"):
    /// the keys must be loaded here, and once on it stays on (sealed batches on disk need it).
    pub fn check_encryption(&self, old: Option<&str>, new: Option<&str>) -> Result<(), String> {
        match (old, new) {
            (Some(_), None) => Err("encryption.at.rest cannot be turned off: the topic has sealed batches on disk (switch keys by naming another key id instead)".into()),
            (_, Some(setting)) => self.security.sealer_for(Some(if setting == "true" { "" } else { setting })).map(drop),
            (None, None) => Ok(()),
        }
    }

    /// `catalog` is the one the metadata thread keeps applying to; `cluster_id` comes from
    /// the applied image.
    pub fn new(
        config: ServerConfig,
        catalog: Arc<RwLock<Catalog>>,
        cluster: Arc<ClusterHandle>,
        cluster_id: String,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Broker> {
        std::fs::create_dir_all(&config.data_dir)?;
        write_meta_properties(&config, &cluster_id)?;
        let pid_path = config.data_dir.join("producer-id-block");
        let next = match std::fs::read_to_string(&pid_path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", pid_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let engine_io = match config.io {
            IoMode::Auto => IoBackend::Auto,
            IoMode::Uring => IoBackend::Uring,
            IoMode::Poll => IoBackend::Std,
        };
        // Partition directories a deletion renamed and had not removed when the broker
        // stopped (the shards remove them off their threads while running).
        match riptide_engine::remove_retired_dirs(&config.data_dir, engine_io) {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} partition director(ies) left by deletions"),
            Err(e) => tracing::warn!("removing directories left by deletions: {e}"),
        }
        let quotas = catalog.read().unwrap_or_else(|e| e.into_inner()).quotas.clone();
        quotas.set_window(config.quota_window_num, config.quota_window_size_seconds);
        Ok(Broker {
            quotas,
            catalog,
            cluster,
            metrics,
            producer_ids: Mutex::new(ProducerIdBlock { next, limit: next, path: pid_path }),
            shutting_down: AtomicBool::new(false),
            cluster_id,
            engine_io,
            security: crate::security::Security::new(
                &config.security,
                config.inter_broker_listener().protocol,
            )
            .map_err(std::io::Error::other)?,
            config,
        })
    }

    /// The topics' defaults on this broker now: its static config, then the cluster-wide
    /// dynamic broker configs, then its own (`catalog::dynamic`).
    pub fn log_defaults(&self) -> crate::config::TopicDefaults {
        let cat = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        let layers = [
            cat.broker_configs.get(&riptide_quorum::CLUSTER_DEFAULT),
            cat.broker_configs.get(&self.config.node_id),
        ];
        crate::catalog::dynamic::apply(&self.config.log, &layers)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).get(name)
    }

    pub fn catalog_generation(&self) -> u64 {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).generation
    }

    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Validates a new topic here (name, partitions, replication factor, configs), then has
    /// the active controller place and create it; answered once this broker's catalog has it.
    /// `validate_only` checks without creating.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        assignment: Option<Vec<Vec<i32>>>,
        id: Option<u128>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, AdminError> {
        catalog::validate_topic_name(name).map_err(AdminError::InvalidTopic)?;
        let partitions = match &assignment {
            Some(a) => a.len() as i32,
            None if partitions == -1 => self.config.num_partitions,
            None => partitions,
        };
        if !(1..=100_000).contains(&partitions) {
            return Err(AdminError::InvalidPartitions(format!(
                "Number of partitions must be larger than 0 (and at most 100000), got {partitions}."
            )));
        }
        let brokers = self.catalog.read().unwrap_or_else(|e| e.into_inner()).brokers.len().max(1);
        let rf = match &assignment {
            Some(a) => a.first().map_or(0, |r| r.len() as i16),
            None if replication_factor == -1 => self.default_replication_factor(brokers),
            None => replication_factor,
        };
        if rf < 1 {
            return Err(AdminError::InvalidReplicationFactor(format!(
                "Replication factor must be larger than 0, got {rf}."
            )));
        }
        if assignment.is_none() && rf as usize > brokers {
            return Err(AdminError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} \
                 cannot be reached because only {brokers} broker(s) are registered."
            )));
        }
        let mut configs = configs;
        catalog::drop_removed_topic_configs(name, &mut configs);
        for (k, v) in &configs {
            catalog::validate_topic_config(k, v, &self.log_defaults()).map_err(AdminError::InvalidConfig)?;
        }
        let encryption = configs.get("encryption.at.rest").filter(|v| *v != "false");
        self.check_encryption(None, encryption.map(String::as_str)).map_err(AdminError::InvalidConfig)?;
        if self.topic(name).is_some() {
            return Err(AdminError::TopicExists(name.to_string()));
        }
        let cmd = AdminCommand::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor: rf,
            configs,
            assignment,
            id,
            validate_only,
        };
        let reply = self.cluster.admin(cmd).await?;
        let record =
            reply.topic.ok_or_else(|| AdminError::Unknown("the controller returned no topic".into()))?;
        Ok(Arc::new(TopicMeta::from_record(&record)))
    }

    /// `default.replication.factor`, or when unset 3 where the cluster has 3 or more brokers
    /// (leader and two followers), else every broker.
    pub fn default_replication_factor(&self, brokers: usize) -> i16 {
        match self.config.default_replication_factor {
            rf if rf > 0 => rf,
            _ => brokers.min(3) as i16,
        }
    }

    /// Auto-creation on Metadata, as Kafka does when `auto.create.topics.enable` is true.
    /// Returns the topic if it exists afterwards (a concurrent creation counts).
    pub async fn auto_create(&self, name: &str) -> Option<Arc<TopicMeta>> {
        if !self.config.auto_create_topics {
            return None;
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), None, None, false).await {
            Ok(t) => Some(t),
            Err(AdminError::TopicExists(_)) => self.topic(name),
            Err(e) => {
                tracing::debug!("auto-creating {name}: {e}");
                None
            }
        }
    }

    /// This node leads the partition (per the applied metadata).
    pub fn leads(&self, meta: &TopicMeta, partition: i32) -> bool {
        meta.leader(partition) == self.config.node_id
    }

    pub fn next_producer_id(&self) -> Result<riptide_model::ProducerId, std::io::Error> {
        let mut b = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if b.next >= b.limit {
            let limit = b.next + PRODUCER_ID_BLOCK;
            catalog::write_atomically(&b.path, limit.to_string().as_bytes())?;
            b.limit = limit;
        }
        // Unique across the cluster without asking the controller: the block counter times
        // 1024 plus the node id (node ids below 1024 never collide).
        let id = b.next * 1024 + i64::from(self.config.node_id % 1024);
        b.next += 1;
        Ok(riptide_model::ProducerId(id))
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// Kafka's `meta.properties`: which cluster and node this data directory belongs to.
fn write_meta_properties(config: &ServerConfig, cluster_id: &str) -> std::io::Result<()> {
    let path = config.data_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(old) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            if !old.trim().is_empty() && old.trim() != cluster_id {
                return Err(std::io::Error::other(format!(
                    "{} belongs to cluster {}, but the metadata quorum is cluster {cluster_id}",
                    path.display(),
                    old.trim()
                )));
            }
            if !old.trim().is_empty() {
                return Ok(());
            }
        }
    }
    let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={}\n", config.node_id);
    catalog::write_atomically(&path, text.as_bytes())
}
