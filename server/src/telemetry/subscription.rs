//! Client-metrics subscriptions (KIP-714's CLIENT_METRICS config resources): which metrics
//! (name prefixes, `*` for all) the clients a `match` selects push, and how often. Set with
//! IncrementalAlterConfigs / AlterConfigs on resource type 16 and kept in the metadata log.

use std::collections::BTreeMap;

/// Kafka's config resource type of client-metrics subscriptions.
pub const RESOURCE_TYPE: i8 = 16;

pub const METRICS: &str = "metrics";
pub const INTERVAL_MS: &str = "interval.ms";
pub const MATCH: &str = "match";
/// Every config of a subscription with its default (as DescribeConfigs lists them).
pub const CONFIGS: [(&str, &str); 3] = [(METRICS, ""), (INTERVAL_MS, "300000"), (MATCH, "")];
pub const DEFAULT_INTERVAL_MS: i32 = 300_000;
const INTERVAL_RANGE: std::ops::RangeInclusive<i32> = 100..=3_600_000;
/// `metrics` value meaning every metric.
pub const ALL: &str = "*";

/// What a subscription's `match` may select clients by.
const MATCH_KEYS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

/// What the broker knows of a client instance, as `match` selects it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub instance_id: String,
    pub client_id: String,
    pub software_name: String,
    pub software_version: String,
    pub source_address: String,
    pub source_port: String,
}

impl ClientInfo {
    fn get(&self, key: &str) -> &str {
        match key {
            "client_instance_id" => &self.instance_id,
            "client_id" => &self.client_id,
            "client_software_name" => &self.software_name,
            "client_software_version" => &self.software_version,
            "client_source_address" => &self.source_address,
            _ => &self.source_port,
        }
    }
}

/// A parsed subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub name: String,
    pub metrics: Vec<String>,
    pub interval_ms: i32,
    matches: Vec<(String, regex::Regex)>,
}

/// A comma-separated list as Kafka reads list configs (blanks trimmed, empty items dropped).
fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

impl Subscription {
    /// Parses and checks a subscription's configs (the message is for INVALID_CONFIG).
    pub fn parse(name: &str, configs: &BTreeMap<String, String>) -> Result<Subscription, String> {
        if name.is_empty() {
            return Err("Subscription name can't be empty".into());
        }
        if let Some(unknown) = configs.keys().find(|k| !CONFIGS.iter().any(|(c, _)| c == k)) {
            return Err(format!("Unknown client metrics configuration: {unknown}"));
        }
        let interval_ms = match configs.get(INTERVAL_MS) {
            None => DEFAULT_INTERVAL_MS,
            Some(v) => {
                v.trim().parse::<i32>().ok().filter(|i| INTERVAL_RANGE.contains(i)).ok_or_else(|| {
                    format!("Invalid value {v} for {INTERVAL_MS}: must be between 100 and 3600000")
                })?
            }
        };
        let mut matches = Vec::new();
        for pattern in list(configs.get(MATCH).map_or("", String::as_str)) {
            let Some((key, re)) = pattern.split_once('=') else {
                return Err(format!("Illegal client matching pattern: {pattern}"));
            };
            let key = key.trim();
            if !MATCH_KEYS.contains(&key) {
                return Err(format!("Invalid client matching key: {key}"));
            }
            let re = regex::Regex::new(&format!("^(?:{})$", re.trim()))
                .map_err(|_| format!("Illegal regex pattern in {MATCH}: {}", re.trim()))?;
            matches.push((key.to_string(), re));
        }
        let metrics = list(configs.get(METRICS).map_or("", String::as_str));
        Ok(Subscription { name: name.to_string(), metrics, interval_ms, matches })
    }

    /// Whether the subscription selects this client (every `match` key matches as a whole).
    pub fn selects(&self, client: &ClientInfo) -> bool {
        self.matches.iter().all(|(key, re)| re.is_match(client.get(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parse_and_match_as_kafka() {
        let s = Subscription::parse(
            "s",
            &configs(&[
                (METRICS, "org.apache.kafka.producer., org.apache.kafka.consumer.fetch"),
                (INTERVAL_MS, "1000"),
                (MATCH, "client_id=app-.*,client_software_name=librdkafka"),
            ]),
        )
        .unwrap();
        assert_eq!(s.metrics, vec!["org.apache.kafka.producer.", "org.apache.kafka.consumer.fetch"]);
        assert_eq!(s.interval_ms, 1000);
        let mut c = ClientInfo {
            client_id: "app-1".into(),
            software_name: "librdkafka".into(),
            ..Default::default()
        };
        assert!(s.selects(&c));
        c.client_id = "xapp-1".into();
        assert!(!s.selects(&c), "the whole value must match");
        assert!(Subscription::parse("all", &configs(&[])).unwrap().selects(&c), "no match: every client");
        for bad in [
            configs(&[(INTERVAL_MS, "50")]),
            configs(&[(INTERVAL_MS, "soon")]),
            configs(&[(MATCH, "client_id")]),
            configs(&[(MATCH, "group=x")]),
            configs(&[(MATCH, "client_id=(")]),
            configs(&[("metric", "x")]),
        ] {
            assert!(Subscription::parse("s", &bad).is_err(), "{bad:?}");
        }
    }
}
