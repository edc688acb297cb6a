//! The topic catalog: this broker's view of the applied metadata image — which topics exist,
//! their ids, partitions (replicas, leader, leader epoch, ISR), config overrides, and the
//! registered brokers.
//!
//! One catalog per broker, behind a lock in the broker's shared state; it changes only when the
//! broker applies metadata records fetched from the quorum (`cluster`), never on the data path,
//! which reads an `Arc<TopicMeta>` snapshot. The metadata log is what persists it; `topics.json`
//! (the single-node catalog before the quorum existed) is only read once, to import its topics.

pub mod described;
pub mod dynamic;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use riptide_engine::config::IoMode;
use riptide_engine::{IoBackend, LogConfig, TimestampType};
use riptide_quorum::{BrokerState, PartitionState, TopicRecord, NO_LEADER};
use serde::{Deserialize, Serialize};

use crate::config::{Durability, TopicDefaults};

/// Kafka's topic-name rule: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!("topic name length must be 1..=249, got {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) =
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!("topic name {name:?} contains illegal character {c:?}"));
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    /// The topic's UUID as a u128 (Kafka topic ids, Metadata v10+).
    pub id: u128,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Only the configs set on the topic; the rest come from broker defaults.
    pub configs: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
    /// Per partition: replicas, leader, leader epoch, ISR (empty in a legacy `topics.json`).
    #[serde(default)]
    pub states: Vec<PartitionState>,
}

impl TopicMeta {
    pub fn from_record(t: &TopicRecord) -> TopicMeta {
        TopicMeta {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as i32,
            replication_factor: t.partitions.first().map_or(1, |p| p.replicas.len() as i16),
            configs: t.configs.clone(),
            internal: t.internal,
            states: t.partitions.clone(),
        }
    }

    /// The partition's leader (`NO_LEADER` when offline or unknown).
    pub fn leader(&self, partition: i32) -> i32 {
        usize::try_from(partition).ok().and_then(|i| self.states.get(i)).map_or(NO_LEADER, |p| p.leader)
    }

    pub fn state(&self, partition: i32) -> Option<&PartitionState> {
        usize::try_from(partition).ok().and_then(|i| self.states.get(i))
    }
}

/// Where a config value came from, in DescribeConfigs' terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    Default = 5,
}

/// Every topic config the broker knows, with its broker default. A name not here is rejected
/// with INVALID_CONFIG, as Kafka does.
pub fn topic_config_defaults(d: &TopicDefaults) -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "delete".into()),
        ("compression.gzip.level", "-1".into()),
        ("compression.lz4.level", "9".into()),
        ("compression.type", "producer".into()),
        ("compression.zstd.level", "3".into()),
        ("delete.retention.ms", "86400000".into()),
        ("durability.policy", d.durability.name().into()),
        ("encryption.at.rest", "false".into()),
        ("file.delete.delay.ms", "60000".into()),
        ("flush.messages", "9223372036854775807".into()),
        ("flush.ms", "9223372036854775807".into()),
        ("index.interval.bytes", "4096".into()),
        ("max.compaction.lag.ms", "9223372036854775807".into()),
        ("max.message.bytes", d.max_message_bytes.to_string()),
        // A no-op since Kafka 4.0 (no down-conversion), still accepted and described there.
        ("message.downconversion.enable", "true".into()),
        ("message.timestamp.after.max.ms", "9223372036854775807".into()),
        ("message.timestamp.before.max.ms", "9223372036854775807".into()),
        (
            "message.timestamp.type",
            if d.message_timestamp_type_log_append { "LogAppendTime" } else { "CreateTime" }.into(),
        ),
        ("min.cleanable.dirty.ratio", "0.5".into()),
        ("min.compaction.lag.ms", "0".into()),
        ("min.insync.replicas", d.min_insync_replicas.to_string()),
        ("preallocate", "false".into()),
        ("retention.bytes", d.retention_bytes.to_string()),
        ("retention.ms", d.retention_ms.to_string()),
        ("segment.bytes", d.segment_bytes.to_string()),
        ("segment.index.bytes", "10485760".into()),
        ("segment.jitter.ms", "0".into()),
        ("segment.ms", d.segment_ms.to_string()),
        ("unclean.leader.election.enable", "false".into()),
    ]
}

/// Topic configs Kafka 3.x accepted and 4.0 removed. Older tools and clients still send them;
/// as Kafka 4 does with `message.format.version`, they are dropped (with a warning) instead of
/// failing the whole CreateTopics or AlterConfigs.
pub const REMOVED_TOPIC_CONFIGS: &[&str] = &["message.format.version", "message.timestamp.difference.max.ms"];

/// Removes the `REMOVED_TOPIC_CONFIGS` from `configs` and logs each one dropped.
pub fn drop_removed_topic_configs(topic: &str, configs: &mut BTreeMap<String, String>) {
    for name in REMOVED_TOPIC_CONFIGS {
        if let Some(value) = configs.remove(*name) {
            tracing::warn!("topic {topic}: config {name}={value} was removed in Kafka 4.0; ignored");
        }
    }
}

/// Checks one topic config value; the error text goes back to the client.
pub fn validate_topic_config(name: &str, value: &str, d: &TopicDefaults) -> Result<(), String> {
    if !topic_config_defaults(d).iter().any(|(n, _)| *n == name) {
        return Err(format!("Unknown topic config name: {name}"));
    }
    let int = |min: i64| -> Result<(), String> {
        match value.parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(format!("Invalid value {value} for configuration {name}: must be an integer >= {min}")),
        }
    };
    match name {
        "cleanup.policy" => {
            let known = cleanup_policies(value).all(|p| p == "delete" || p == "compact");
            if known && cleanup_policies(value).next().is_some() {
                Ok(())
            } else {
                Err(format!("Invalid value {value} for configuration cleanup.policy"))
            }
        }
        "compression.type" => match value {
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(()),
            _ => Err(format!("Invalid value {value} for configuration compression.type")),
        },
        // KIP-390's levels: gzip 1..=9, lz4 1..=17, zstd -131072..=22.
        "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
            let (lo, hi) = match name {
                "compression.gzip.level" => (1, 9),
                "compression.lz4.level" => (1, 17),
                _ => (-131_072, 22),
            };
            match value.parse::<i32>() {
                Ok(l) if (lo..=hi).contains(&l) || (name == "compression.gzip.level" && l == -1) => Ok(()),
                _ => Err(format!("Invalid value {value} for configuration {name}: must be in {lo}..={hi}")),
            }
        }
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!("Invalid value {value} for configuration message.timestamp.type")),
        },
        "durability.policy" => Durability::parse(value).map(|_| ()).ok_or_else(|| {
            format!("Invalid value {value} for configuration durability.policy: fsync, replicated or none")
        }),
        "retention.ms" | "retention.bytes" => int(-1),
        "segment.bytes" => int(14),
        "segment.ms" => int(1),
        "max.message.bytes" => int(0),
        "min.insync.replicas" => int(1),
        "index.interval.bytes" | "segment.index.bytes" => int(4),
        // true (the broker's current key), false, or the id of the key to seal with.
        "encryption.at.rest" => match value {
            "true" | "false" => Ok(()),
            id if !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "Invalid value {value} for configuration encryption.at.rest: true, false or a key id"
            )),
        },
        "preallocate" | "unclean.leader.election.enable" | "message.downconversion.enable" => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("Invalid value {value} for configuration {name}: must be true or false")),
        },
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(format!("Invalid value {value} for configuration {name}")),
        },
        _ => int(0),
    }
}

/// The configs of one topic resolved against broker defaults.
#[derive(Clone, Debug)]
pub struct EffectiveTopicConfig {
    pub log: LogConfig,
    pub durability: Durability,
    /// `cleanup.policy` has `delete`: segments go by retention.ms / retention.bytes.
    pub cleanup_delete: bool,
    /// `cleanup.policy` has `compact`: the latest record per key is kept.
    pub cleanup_compact: bool,
    pub delete_retention_ms: i64,
    /// `min.insync.replicas`: acks=all needs an ISR at least this large.
    pub min_insync_replicas: usize,
    /// `encryption.at.rest`: `None` off, `Some("")` the broker's current key, `Some(id)`.
    pub encryption: Option<String>,
}

/// The items of a `cleanup.policy` value: a list, as Kafka parses lists (commas, with spaces
/// around them allowed: "compact, delete").
pub fn cleanup_policies(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|p| !p.is_empty())
}

impl TopicMeta {
    pub fn config_value(&self, name: &str, d: &TopicDefaults) -> Option<(String, ConfigSource)> {
        if let Some(v) = self.configs.get(name) {
            return Some((v.clone(), ConfigSource::DynamicTopic));
        }
        topic_config_defaults(d)
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (v, ConfigSource::Default))
    }

    /// The codec (and level) the broker recompresses produced batches in: `compression.type`
    /// other than `producer` (Kafka's broker-side compression).
    pub fn compression_target(&self) -> Option<(u8, Option<i32>)> {
        let level =
            |name: &str| self.configs.get(name).and_then(|v| v.parse::<i32>().ok()).filter(|l| *l != -1);
        match self.configs.get("compression.type").map(String::as_str)? {
            "uncompressed" => Some((riptide_format::codec::NONE, None)),
            "gzip" => Some((riptide_format::codec::GZIP, level("compression.gzip.level"))),
            "snappy" => Some((riptide_format::codec::SNAPPY, None)),
            "lz4" => Some((riptide_format::codec::LZ4, None)),
            "zstd" => Some((riptide_format::codec::ZSTD, level("compression.zstd.level"))),
            _ => None,
        }
    }

    pub fn effective(&self, d: &TopicDefaults, io: IoBackend) -> EffectiveTopicConfig {
        let get = |name: &str| self.config_value(name, d).map(|(v, _)| v).unwrap_or_default();
        let num = |name: &str, default: i64| get(name).parse::<i64>().unwrap_or(default);
        let durability = Durability::parse(&get("durability.policy")).unwrap_or(d.durability);
        let policy = get("cleanup.policy");
        let cleanup_compact = cleanup_policies(&policy).any(|p| p == "compact");
        let cleanup_delete = cleanup_policies(&policy).any(|p| p == "delete");
        let log = LogConfig {
            segment_bytes: num("segment.bytes", d.segment_bytes as i64).max(14) as u64,
            segment_ms: num("segment.ms", d.segment_ms),
            retention_ms: num("retention.ms", d.retention_ms),
            retention_bytes: num("retention.bytes", d.retention_bytes),
            max_message_bytes: num("max.message.bytes", i64::from(d.max_message_bytes))
                .clamp(0, i64::from(i32::MAX)) as u32,
            index_interval_bytes: num("index.interval.bytes", 4096).clamp(4, i64::from(i32::MAX)) as u32,
            segment_index_bytes: num("segment.index.bytes", 10 << 20).clamp(4, i64::from(i32::MAX)) as u32,
            timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp_before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms", i64::MAX),
            // Kafka refuses keyless records on a compacted topic (its LogValidator).
            keys_required: cleanup_compact,
            io,
            // Direct appends live only in this process until the group commit writes them,
            // so only logs that sync before every acknowledgement may use them.
            io_mode: if durability == Durability::Fsync { d.log_io } else { IoMode::Buffered },
            direct_stage_bytes: d.direct_stage_bytes,
            producer_id_expiration_ms: d.producer_id_expiration_ms,
        };
        EffectiveTopicConfig {
            log,
            durability,
            cleanup_delete,
            cleanup_compact,
            delete_retention_ms: num("delete.retention.ms", 86_400_000),
            min_insync_replicas: num("min.insync.replicas", d.min_insync_replicas as i64).max(1) as usize,
            encryption: match get("encryption.at.rest").as_str() {
                "" | "false" => None,
                "true" => Some(String::new()),
                id => Some(id.to_string()),
            },
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    topics: Vec<TopicMeta>,
}

/// The topics of a single-node data directory from before the metadata quorum.
pub fn read_legacy_topics(data_dir: &Path) -> std::io::Result<Vec<TopicMeta>> {
    let path = data_dir.join("topics.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let file: CatalogFile = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is unreadable: {e}", path.display()),
                )
            })?;
            Ok(file.topics)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// All topics and brokers of the cluster as this broker last applied them.
#[derive(Default)]
pub struct Catalog {
    topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Topic ids to names (Fetch v13+ names every topic by id).
    ids: std::collections::HashMap<u128, String>,
    pub brokers: BTreeMap<i32, BrokerState>,
    /// The metadata log index applied.
    pub applied: u64,
    pub cluster_id: Option<String>,
    /// Bumped on every change so shards can tell their cached configs are stale.
    pub generation: u64,
    /// SCRAM credentials by user, then mechanism code.
    pub scram: Arc<BTreeMap<String, BTreeMap<i8, riptide_quorum::ScramCredential>>>,
    pub acls: Arc<crate::security::acl::AclIndex>,
    /// Dynamic broker configs by broker id (`riptide_quorum::CLUSTER_DEFAULT`: cluster-wide).
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The client quotas as applied, kept with the rates they are enforced on.
    pub client_quotas: Vec<riptide_quorum::ClientQuotas>,
    pub quotas: Arc<crate::quota::Quotas>,
    /// Client-metrics subscriptions (KIP-714) by name, as applied.
    pub client_metrics: BTreeMap<String, BTreeMap<String, String>>,
    /// Groups' dynamic configs (the GROUP config resource), from the metadata log.
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.topics.get(name).cloned()
    }

    pub fn by_id(&self, id: u128) -> Option<Arc<TopicMeta>> {
        self.ids.get(&id).and_then(|name| self.topics.get(name)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<TopicMeta>> {
        self.topics.values().cloned().collect()
    }

    pub fn put(&mut self, topic: TopicMeta) {
        self.ids.insert(topic.id, topic.name.clone());
        if let Some(old) = self.topics.insert(topic.name.clone(), Arc::new(topic)) {
            if self.topics.get(&old.name).is_some_and(|t| t.id != old.id) {
                self.ids.remove(&old.id);
            }
        }
        self.generation += 1;
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<TopicMeta>> {
        let removed = self.topics.remove(name);
        if let Some(t) = &removed {
            self.ids.remove(&t.id);
        }
        self.generation += 1;
        removed
    }

    /// Live (unfenced) brokers, by id.
    /// Partitions without a leader.
    pub fn offline_partitions(&self) -> usize {
        self.topics.values().map(|t| t.states.iter().filter(|s| s.leader < 0).count()).sum()
    }

    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.values().filter(|b| !b.fenced)
    }
}

/// temp file, fsync, rename, fsync the directory: after a crash either the old or the new
/// content is there, never a torn mix.
pub use riptide_quorum::fsutil::write_atomically;

/// A fresh random topic id (never 0, which Kafka reserves for "no id").
pub use riptide_quorum::controller::new_id as new_topic_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn configs_removed_in_kafka_4_are_dropped_and_downconversion_is_a_no_op() {
        let d = TopicDefaults::default();
        let mut c: BTreeMap<String, String> = [
            ("message.format.version", "2.8-IV1"),
            ("message.timestamp.difference.max.ms", "1000"),
            ("retention.ms", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        drop_removed_topic_configs("t", &mut c);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["retention.ms"]);
        assert!(validate_topic_config("message.downconversion.enable", "false", &d).is_ok());
        // A list, as Kafka reads lists: spaces around the commas are fine.
        for ok in ["compact", "delete", "compact,delete", "compact, delete", " delete ,compact"] {
            assert!(validate_topic_config("cleanup.policy", ok, &d).is_ok(), "{ok}");
        }
        for bad in ["", " , ", "compact,nope", "Compact"] {
            assert!(validate_topic_config("cleanup.policy", bad, &d).is_err(), "{bad:?}");
        }
        assert!(validate_topic_config("message.downconversion.enable", "maybe", &d).is_err());
        // Only dropped on the way in: as a name to validate, a removed config is unknown.
        assert!(validate_topic_config("message.format.version", "2.8-IV1", &d).is_err());
    }

    #[test]
    fn configs_are_validated_and_resolved() {
        let d = TopicDefaults::default();
        assert!(validate_topic_config("retention.ms", "-1", &d).is_ok());
        assert!(validate_topic_config("retention.ms", "abc", &d).is_err());
        assert!(validate_topic_config("no.such.config", "1", &d).is_err());
        let mut t = TopicMeta {
            name: "t".into(),
            id: 1,
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
            states: Vec::new(),
        };
        t.configs.insert("message.timestamp.type".into(), "LogAppendTime".into());
        t.configs.insert("retention.ms".into(), "1000".into());
        let e = t.effective(&d, IoBackend::Std);
        assert_eq!(e.log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(e.log.retention_ms, 1000);
        assert_eq!(e.log.segment_bytes, 1 << 30);
    }

    #[test]
    fn legacy_topics_json_is_read() {
        let dir = std::env::temp_dir().join(format!("riptide-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("topics.json"),
            r#"{"version":1,"topics":[{"name":"a","id":7,"partitions":3,"replication_factor":1,"configs":{}}]}"#,
        )
        .expect("write");
        let topics = read_legacy_topics(&dir).expect("read");
        assert_eq!((topics[0].name.as_str(), topics[0].id, topics[0].partitions), ("a", 7, 3));
        std::fs::remove_dir_all(&dir).ok();
    }
}
