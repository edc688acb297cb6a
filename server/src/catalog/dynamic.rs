//! Dynamic broker configs (Kafka's, set with AlterConfigs / IncrementalAlterConfigs on a BROKER
//! resource): the topic defaults Kafka lets an operator change while brokers run. They live in
//! the metadata log (`SetBrokerConfigs`: per broker, or cluster-wide under the resource name
//! ""), so they survive restarts and reach every broker; a broker's topic defaults are its
//! static config (file and flags), then the cluster-wide dynamic configs, then its own.

use std::collections::BTreeMap;

use crate::config::{Durability, TopicDefaults};

/// (dynamic broker config, the topic config it is the default of).
pub const DYNAMIC: &[(&str, &str)] = &[
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("message.max.bytes", "max.message.bytes"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    ("durability.policy", "durability.policy"),
];

/// The topic config a dynamic broker config sets the default of; `None` when it cannot be
/// changed at run time.
pub fn topic_config_of(broker_config: &str) -> Option<&'static str> {
    DYNAMIC.iter().find(|(b, _)| *b == broker_config).map(|(_, t)| *t)
}

/// The broker config that sets a topic config's default dynamically.
pub fn broker_config_of(topic_config: &str) -> Option<&'static str> {
    DYNAMIC.iter().find(|(_, t)| *t == topic_config).map(|(b, _)| *b)
}

/// Checks one dynamic broker config: a name that may change at run time, a value its topic
/// config accepts. The message goes back to the client with INVALID_CONFIG.
pub fn validate(name: &str, value: &str, d: &TopicDefaults) -> Result<(), String> {
    let Some(topic) = topic_config_of(name) else {
        return Err(format!(
            "Cannot update {name} dynamically: it is read only (set it in the config file); dynamic: {}",
            DYNAMIC.iter().map(|(b, _)| *b).collect::<Vec<_>>().join(", ")
        ));
    };
    super::validate_topic_config(topic, value, d).map_err(|e| format!("{name}: {e}"))
}

/// `base` with the dynamic configs of `layers` applied in order (later ones win). Values were
/// validated when set; one that does not parse is skipped.
pub fn apply(base: &TopicDefaults, layers: &[Option<&BTreeMap<String, String>>]) -> TopicDefaults {
    let mut d = base.clone();
    for (name, value) in layers.iter().flatten().flat_map(|l| l.iter()) {
        let int = || value.parse::<i64>().ok();
        match name.as_str() {
            "log.retention.ms" => d.retention_ms = int().unwrap_or(d.retention_ms),
            "log.retention.bytes" => d.retention_bytes = int().unwrap_or(d.retention_bytes),
            "log.segment.bytes" => d.segment_bytes = value.parse().unwrap_or(d.segment_bytes),
            "log.roll.ms" => d.segment_ms = int().unwrap_or(d.segment_ms),
            "message.max.bytes" => d.max_message_bytes = value.parse().unwrap_or(d.max_message_bytes),
            "min.insync.replicas" => d.min_insync_replicas = value.parse().unwrap_or(d.min_insync_replicas),
            "log.message.timestamp.type" => d.message_timestamp_type_log_append = value == "LogAppendTime",
            "durability.policy" => d.durability = Durability::parse(value).unwrap_or(d.durability),
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_only_dynamic_names_validate() {
        let base = TopicDefaults::default();
        let cluster: BTreeMap<String, String> =
            [("log.retention.ms".into(), "1000".into()), ("log.segment.bytes".into(), "4096".into())].into();
        let own: BTreeMap<String, String> = [("log.retention.ms".into(), "2000".into())].into();
        let d = apply(&base, &[Some(&cluster), Some(&own)]);
        assert_eq!((d.retention_ms, d.segment_bytes), (2000, 4096));
        assert_eq!(d.retention_bytes, base.retention_bytes);
        assert!(validate("log.retention.ms", "60000", &base).is_ok());
        assert!(validate("log.retention.ms", "soon", &base).is_err());
        assert!(validate("listeners", "PLAINTEXT://:1", &base).is_err());
        for (b, t) in DYNAMIC {
            assert_eq!(broker_config_of(t), Some(*b));
        }
    }
}
