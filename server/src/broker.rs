//! State shared by every shard of one broker process: configuration, the topic catalog,
//! metrics and the producer-id allocator. It knows nothing of shards, connections or groups.
//!
//! Nothing here is touched on the per-record hot path except a read lock on the catalog to find
//! a topic (one `Arc` clone). Partition data lives only in the owning shard.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use riptide_engine::IoBackend;

use crate::catalog::{self, Catalog, TopicMeta};
use crate::config::{IoMode, ServerConfig};
use crate::metrics::Metrics;
use kafka_protocol::ResponseError;

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
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
}

impl AdminError {
    pub fn kafka_code(&self) -> i16 {
        match self {
            AdminError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            AdminError::TopicExists(_) => ResponseError::TopicAlreadyExists,
            AdminError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            AdminError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            AdminError::InvalidConfig(_) => ResponseError::InvalidConfig,
            AdminError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
            AdminError::Storage(_) => ResponseError::KafkaStorageError,
        }
        .code()
    }
}

pub struct Broker {
    pub config: ServerConfig,
    pub catalog: RwLock<Catalog>,
    pub metrics: Arc<Metrics>,
    producer_ids: Mutex<ProducerIdBlock>,
    pub shutting_down: AtomicBool,
    pub cluster_id: String,
    pub engine_io: IoBackend,
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
    pub fn new(config: ServerConfig) -> std::io::Result<Broker> {
        std::fs::create_dir_all(&config.data_dir)?;
        let catalog = Catalog::open(&config.data_dir)?;
        let cluster_id = load_or_create_cluster_id(&config)?;
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
        Ok(Broker {
            catalog: RwLock::new(catalog),
            metrics: Arc::new(Metrics::default()),
            producer_ids: Mutex::new(ProducerIdBlock { next, limit: next, path: pid_path }),
            shutting_down: AtomicBool::new(false),
            cluster_id,
            engine_io,
            config,
        })
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

    /// Creates a topic (validating name, partitions, replication factor and configs) and
    /// persists it. `validate_only` checks without creating.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, AdminError> {
        catalog::validate_topic_name(name).map_err(AdminError::InvalidTopic)?;
        let partitions = if partitions == -1 { self.config.num_partitions } else { partitions };
        if !(1..=100_000).contains(&partitions) {
            return Err(AdminError::InvalidPartitions(format!(
                "Number of partitions must be larger than 0 (and at most 100000), got {partitions}."
            )));
        }
        let rf = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if rf != 1 {
            return Err(AdminError::InvalidReplicationFactor(format!(
                "Replication factor: {rf} larger than available brokers: 1."
            )));
        }
        for (k, v) in &configs {
            catalog::validate_topic_config(k, v, &self.config.log).map_err(AdminError::InvalidConfig)?;
        }
        let mut cat = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        if cat.get(name).is_some() {
            return Err(AdminError::TopicExists(name.to_string()));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: catalog::new_topic_id(),
            partitions,
            replication_factor: rf,
            configs,
            internal: name.starts_with("__"),
        };
        if !validate_only {
            cat.put(meta.clone())?;
        }
        Ok(Arc::new(meta))
    }

    /// Auto-creation on Metadata, as Kafka does when `auto.create.topics.enable` is true.
    /// Returns the topic if it exists afterwards (a concurrent creation counts).
    pub fn auto_create(&self, name: &str) -> Option<Arc<TopicMeta>> {
        if !self.config.auto_create_topics {
            return None;
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(t) => Some(t),
            Err(AdminError::TopicExists(_)) => self.topic(name),
            Err(_) => None,
        }
    }

    pub fn next_producer_id(&self) -> Result<i64, std::io::Error> {
        let mut b = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if b.next >= b.limit {
            let limit = b.next + PRODUCER_ID_BLOCK;
            catalog::write_atomically(&b.path, limit.to_string().as_bytes())?;
            b.limit = limit;
        }
        let id = b.next;
        b.next += 1;
        Ok(id)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

fn load_or_create_cluster_id(config: &ServerConfig) -> std::io::Result<String> {
    let path = config.data_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return Ok(id.trim().to_string());
        }
    }
    let id = if config.cluster_id.is_empty() {
        // Kafka cluster ids are a base64url UUID; 22 chars of a random u128 serve the same role.
        let raw = catalog::new_topic_id();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..22).map(|i| alphabet[((raw >> (i * 6)) & 63) as usize] as char).collect()
    } else {
        config.cluster_id.clone()
    };
    let text = format!("version=1\ncluster.id={id}\nnode.id={}\n", config.node_id);
    catalog::write_atomically(&path, text.as_bytes())?;
    Ok(id)
}
