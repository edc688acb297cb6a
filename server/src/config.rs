//! Broker configuration: built-in defaults, overridden by a TOML file, overridden by flags.
//!
//! Names follow Kafka's broker configs where one exists (`num.partitions`,
//! `auto.create.topics.enable`, `socket.request.max.bytes`, `log.retention.ms`, ...), so a
//! Kafka operator recognises them. The TOML file uses the same dotted names as quoted keys
//! or the underscore form (`num_partitions`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
    pub listen: SocketAddr,
    /// Host and port put in Metadata responses; defaults to the listen address, with
    /// `0.0.0.0` replaced by `localhost`.
    pub advertised_listener: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub shards: usize,
    pub pin_shards: bool,
    pub io: IoMode,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub socket_request_max_bytes: u32,
    pub max_connections: usize,
    pub max_in_flight_requests_per_connection: usize,
    pub log: TopicDefaults,
    pub cluster_id: String,
    /// `log.flush.method`: how a group commit makes appends durable.
    pub flush_method: FlushMethod,
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
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_id: 0,
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            advertised_listener: None,
            metrics_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9644))),
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin_shards: true,
            io: IoMode::Auto,
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            max_in_flight_requests_per_connection: 64,
            log: TopicDefaults::default(),
            cluster_id: String::new(),
            flush_method: FlushMethod::Syncfs,
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
        set!(file.listen, self.listen);
        if file.advertised_listener.is_some() {
            self.advertised_listener = file.advertised_listener;
        }
        if let Some(m) = file.metrics_listen {
            self.metrics_listen = parse_optional_addr(&m)?;
        }
        set!(file.shards, self.shards);
        set!(file.pin_shards, self.pin_shards);
        set!(file.io, self.io);
        set!(file.auto_create_topics_enable, self.auto_create_topics);
        set!(file.num_partitions, self.num_partitions);
        set!(file.socket_request_max_bytes, self.socket_request_max_bytes);
        set!(file.max_connections, self.max_connections);
        set!(file.log_segment_bytes, self.log.segment_bytes);
        set!(file.log_roll_ms, self.log.segment_ms);
        set!(file.log_retention_ms, self.log.retention_ms);
        set!(file.log_retention_bytes, self.log.retention_bytes);
        set!(file.log_retention_check_interval_ms, self.log.retention_check_interval_ms);
        set!(file.message_max_bytes, self.log.max_message_bytes);
        set!(file.log_flush_method, self.flush_method);
        if let Some(p) = file.durability_policy {
            self.log.durability =
                Durability::parse(&p).ok_or_else(|| format!("unknown durability.policy {p:?}"))?;
        }
        self.validate()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(format!("shards must be 1..=1024, got {}", self.shards));
        }
        if self.num_partitions < 1 {
            return Err("num.partitions must be at least 1".into());
        }
        if self.socket_request_max_bytes < 1024 {
            return Err("socket.request.max.bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// The host and port clients should connect to.
    pub fn advertised(&self) -> (String, i32) {
        if let Some(a) = &self.advertised_listener {
            if let Some((h, p)) = a.rsplit_once(':') {
                if let Ok(port) = p.parse() {
                    return (h.to_string(), port);
                }
            }
        }
        let host = if self.listen.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            self.listen.ip().to_string()
        };
        (host, i32::from(self.listen.port()))
    }
}

/// `"off"` or an empty string disables a listener.
pub fn parse_optional_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    if value.is_empty() || value == "off" || value == "none" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|e| format!("bad address {value:?}: {e}"))
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
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }
}
