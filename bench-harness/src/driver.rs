//! OMB's Kafka driver files (`driver-kafka/kafka-throughput.yaml` and the like): where OMB
//! keeps the producer settings, the replication factor and the topic configs, as Java
//! properties text. `riptide-bench run --driver FILE` applies them to every workload, so a
//! published OMB result's workload and driver pair runs here as it is. What the harness does
//! not model (serializers, idempotence, consumer tuning, ...) is listed, not silently dropped:
//! the run's notes name every property left out.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::workload::Workload;

/// The file as OMB writes it. Other keys (`reset`: OMB deletes old benchmark topics first;
/// ours are fresh per run anyway) are left out.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDriver {
    name: String,
    #[serde(default)]
    driver_class: Option<String>,
    #[serde(default)]
    replication_factor: Option<i16>,
    #[serde(default)]
    topic_config: Option<String>,
    #[serde(default)]
    common_config: Option<String>,
    #[serde(default)]
    producer_config: Option<String>,
    #[serde(default)]
    consumer_config: Option<String>,
}

/// A checked driver file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Driver {
    pub name: String,
    pub replication_factor: Option<i16>,
    pub topic_config: Vec<(String, String)>,
    /// `bootstrap.servers` from `commonConfig`.
    pub bootstrap_servers: Option<String>,
    pub acks: Option<String>,
    pub linger_ms: Option<f64>,
    pub batch_bytes: Option<u32>,
    pub compression: Option<String>,
    pub in_flight_max: Option<u32>,
    /// Properties the harness does not apply (`section: key=value`).
    pub ignored: Vec<String>,
}

/// Java properties text: `key=value` (or `key: value`) lines, `#`/`!` comments.
pub fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| match l.find(['=', ':']) {
            Some(i) => (l[..i].trim().to_string(), l[i + 1..].trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

pub fn load(path: &Path) -> Result<Driver> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    parse(&text).map_err(|reason| Error::Workload { path: path.display().to_string(), reason })
}

pub fn parse(text: &str) -> Result<Driver, String> {
    let raw: RawDriver = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(class) = raw.driver_class.as_deref().filter(|c| !c.contains(".kafka.")) {
        return Err(format!("driverClass {class} is not OMB's Kafka driver"));
    }
    let mut d = Driver {
        name: raw.name,
        replication_factor: raw.replication_factor,
        topic_config: properties(raw.topic_config.as_deref().unwrap_or("")),
        ..Driver::default()
    };
    for (k, v) in properties(raw.common_config.as_deref().unwrap_or("")) {
        match k.as_str() {
            "bootstrap.servers" => d.bootstrap_servers = Some(v),
            _ => d.ignored.push(format!("commonConfig: {k}={v}")),
        }
    }
    for (k, v) in properties(raw.producer_config.as_deref().unwrap_or("")) {
        let number =
            |what: &str| v.parse::<f64>().map_err(|_| format!("producerConfig {what}={v} is not a number"));
        match k.as_str() {
            "acks" => d.acks = Some(v.clone()),
            "linger.ms" => d.linger_ms = Some(number("linger.ms")?),
            "batch.size" => d.batch_bytes = Some(number("batch.size")? as u32),
            "compression.type" => d.compression = Some(v.clone()),
            "max.in.flight.requests.per.connection" => d.in_flight_max = Some(number(&k)? as u32),
            _ => d.ignored.push(format!("producerConfig: {k}={v}")),
        }
    }
    for (k, v) in properties(raw.consumer_config.as_deref().unwrap_or("")) {
        // The harness's consumers start from the earliest offset and commit every second.
        if k != "auto.offset.reset" && k != "enable.auto.commit" {
            d.ignored.push(format!("consumerConfig: {k}={v}"));
        }
    }
    Ok(d)
}

impl Driver {
    /// The workload with this driver's settings (the workload file's own `topicConfig`
    /// entries win over the driver's).
    pub fn apply(&self, mut w: Workload) -> Result<Workload, String> {
        if let Some(rf) = self.replication_factor {
            w.replication_factor = rf;
        }
        for (k, v) in &self.topic_config {
            if !w.topic_config.iter().any(|(key, _)| key == k) {
                w.topic_config.push((k.clone(), v.clone()));
            }
        }
        if let Some(a) = &self.acks {
            w.acks = a.parse().map_err(|e| format!("producerConfig acks: {e}"))?;
        }
        if let Some(ms) = self.linger_ms {
            w.linger =
                std::time::Duration::try_from_secs_f64(ms / 1e3).map_err(|_| format!("linger.ms={ms}"))?;
        }
        if let Some(b) = self.batch_bytes {
            w.batch_bytes_max = b.max(1);
        }
        if let Some(c) = &self.compression {
            w.compression = c.parse().map_err(|e| format!("producerConfig compression.type: {e}"))?;
        }
        if let Some(n) = self.in_flight_max {
            w.in_flight_max = n.max(1);
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_client::{Acks, Compression};

    /// OMB's driver-kafka/kafka-throughput.yaml, comments left out.
    const THROUGHPUT: &str = "name: Kafka\ndriverClass: io.openmessaging.benchmark.driver.kafka.KafkaBenchmarkDriver\n\
        replicationFactor: 3\nreset: true\n\ntopicConfig: |\n  min.insync.replicas=2\n\n\
        commonConfig: |\n  bootstrap.servers=localhost:9092\n  default.api.timeout.ms=600000\n\n\
        producerConfig: |\n  acks=all\n  linger.ms=1\n  batch.size=1048576\n\n\
        consumerConfig: |\n  auto.offset.reset=earliest\n  enable.auto.commit=false\n  max.partition.fetch.bytes=10485760\n";

    #[test]
    fn omb_s_kafka_driver_file_reads_and_applies() {
        let d = parse(THROUGHPUT).expect("OMB's file");
        assert_eq!(d.replication_factor, Some(3));
        assert_eq!(d.topic_config, vec![("min.insync.replicas".to_string(), "2".to_string())]);
        assert_eq!(d.bootstrap_servers.as_deref(), Some("localhost:9092"));
        assert_eq!((d.acks.as_deref(), d.linger_ms, d.batch_bytes), (Some("all"), Some(1.0), Some(1 << 20)));
        assert_eq!(
            d.ignored,
            vec![
                "commonConfig: default.api.timeout.ms=600000",
                "consumerConfig: max.partition.fetch.bytes=10485760"
            ]
        );
        let w = crate::workload::parse(
            "name: x\nmessageSize: 100\nacks: 1\nlingerMs: 20\ncompression: none\ntopicConfig:\n  min.insync.replicas: 1\n",
            Path::new("."),
        )
        .expect("workload");
        let lz4 = Driver { compression: Some("lz4".into()), in_flight_max: Some(1), ..d.clone() };
        let w = lz4.apply(w).expect("applies");
        assert_eq!((w.acks, w.compression, w.replication_factor), (Acks::All, Compression::Lz4, 3));
        assert_eq!((w.linger.as_millis(), w.batch_bytes_max, w.in_flight_max), (1, 1 << 20, 1));
        assert_eq!(
            w.topic_config,
            vec![("min.insync.replicas".to_string(), "1".to_string())],
            "the workload's own wins"
        );
    }

    #[test]
    fn properties_and_refusals() {
        let p = properties("# comment\n! also\na=1\nb: two\n  c = x=y \nflag\n");
        let want = [("a", "1"), ("b", "two"), ("c", "x=y"), ("flag", "")];
        assert_eq!(p, want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec());
        assert!(parse(
            "name: Pulsar\ndriverClass: io.openmessaging.benchmark.driver.pulsar.PulsarBenchmarkDriver\n"
        )
        .expect_err("not Kafka")
        .contains("not OMB's Kafka driver"));
        assert!(parse("name: K\nproducerConfig: |\n  linger.ms=soon\n")
            .expect_err("bad")
            .contains("linger.ms"));
        let odd = Driver { acks: Some("2".into()), ..Driver::default() };
        let w = crate::workload::parse("name: x\nmessageSize: 100\n", Path::new(".")).expect("workload");
        assert!(odd.apply(w).expect_err("acks=2").contains("acks"));
    }
}
