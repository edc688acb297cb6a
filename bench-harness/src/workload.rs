//! Workloads: YAML files in the manner of the OpenMessaging Benchmark (OMB). The field names
//! are OMB's where OMB has one (`topics`, `partitionsPerTopic`, `messageSize`, `payloadFile`,
//! `subscriptionsPerTopic`, `consumerPerSubscription`, `producersPerTopic`, `producerRate`,
//! `testDurationMinutes`, ...), so an OMB workload file reads as-is; the producer settings OMB
//! keeps in its driver file (`acks`, `compression`, `batchSizeBytes`, `lingerMs`) are workload
//! fields here, so one file says everything that shaped a run. Every field of OMB's
//! `Workload.java` is read: `keyDistributor` (see `keys`), `useRandomizedPayloads` with
//! `randomBytesRatio` (a random prefix, zeros after; `randomizedPayloadPoolSize` is accepted
//! and unused: every message differs by its stamp anyway), `consumerBacklogSizeGB` with
//! `backlogDrainRatio` (see `backlog`), `warmupDurationMinutes`.
//!
//! Reading is strict: an unknown key is an error naming the key and its line (a typo must not
//! silently fall back to a default), and every value is checked against its limits before
//! anything connects. `parse` returns the checked `Workload`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use riptide_client::{Acks, Compression};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::keys::KeyDistributor;

/// Bytes at the front of every message carrying the run tag and the intended send time
/// (see `payload`), so a message cannot be smaller.
pub const MESSAGE_BYTES_MIN: u32 = 16;
pub const MESSAGE_BYTES_MAX: u32 = 16 << 20;
const TOPICS_MAX: u32 = 1_000;
const PARTITIONS_MAX: u32 = 10_000;
const CLIENTS_MAX: u32 = 1_000;
/// Soak runs last hours or days; beyond a week the per-second series grow unwieldy.
const DURATION_S_MAX: f64 = 7.0 * 24.0 * 3600.0;
const BACKLOG_GB_MAX: f64 = 1024.0;
const GIB: f64 = (1u64 << 30) as f64;
const BATCH_BYTES_MAX: u32 = 64 << 20;
const IN_FLIGHT_MAX: u32 = 1_024;

/// The file as written (camelCase keys, OMB's names); see `Workload` for the meaning.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWorkload {
    #[serde(default)]
    replication_factor: Option<i16>,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "one")]
    topics: u32,
    #[serde(default = "one")]
    partitions_per_topic: u32,
    message_size: u32,
    #[serde(default)]
    payload_file: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    use_randomized_payloads: Option<bool>,
    #[serde(default)]
    random_bytes_ratio: Option<f64>,
    #[serde(default)]
    randomized_payload_pool_size: Option<u32>,
    #[serde(default)]
    key_distributor: Option<String>,
    #[serde(default = "one")]
    producers_per_topic: u32,
    #[serde(default = "one")]
    subscriptions_per_topic: u32,
    #[serde(default = "one")]
    consumer_per_subscription: u32,
    #[serde(default)]
    consumer_assignment: Option<String>,
    #[serde(default)]
    producer_rate: Option<f64>,
    #[serde(default, rename = "producerRateMBps")]
    producer_rate_mbps: Option<f64>,
    #[serde(default, rename = "consumerBacklogSizeGB")]
    consumer_backlog_size_gb: Option<f64>,
    #[serde(default)]
    backlog_drain_ratio: Option<f64>,
    #[serde(default)]
    acks: Option<AcksValue>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    batch_size_bytes: Option<u32>,
    #[serde(default)]
    linger_ms: Option<f64>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    warmup_duration_seconds: Option<f64>,
    #[serde(default)]
    warmup_duration_minutes: Option<f64>,
    #[serde(default)]
    test_duration_seconds: Option<f64>,
    #[serde(default)]
    test_duration_minutes: Option<f64>,
    #[serde(default)]
    rate_sweep: Option<RawSweep>,
    #[serde(default)]
    topic_config: BTreeMap<String, Scalar>,
}

/// A topic config value as YAML writes it (`retention.ms: 60000`, `cleanup.policy: compact`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(x) => x.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

fn one() -> u32 {
    1
}

/// `acks: all`, `acks: 1` and `acks: -1` are all natural YAML.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AcksValue {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSweep {
    fractions: Vec<f64>,
    #[serde(default)]
    probe_seconds: Option<f64>,
}

/// Where message bodies come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Random bytes (seeded per producer): incompressible, the default.
    Random,
    /// Zero bytes: maximally compressible.
    Zeros,
    /// A file's bytes, cut or repeated to `messageSize` (OMB's payload files).
    File(PathBuf),
    /// OMB's `useRandomizedPayloads`: this fraction of each message random, the rest zeros.
    PartlyRandom(f64),
}

/// How consumers get their partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Classic consumer groups (JoinGroup/SyncGroup, range assignor): the broker's coordinator
    /// is part of what is measured.
    Group,
    /// Consumer `i` of `n` in a subscription reads partitions `p` with `p % n == i`, with no
    /// group coordination (for brokers without groups, or to leave them out).
    Static,
}

/// The producers' target rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as possible (`producerRate: 0`).
    Max,
    /// Messages per second over all producers of all topics.
    PerSecond(f64),
}

/// Latency sweep: first a probe at max rate, then one run at each fraction of the rate found.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub fractions: Vec<f64>,
    pub probe: Duration,
}

/// A checked workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub description: Option<String>,
    pub topics: u32,
    pub partitions_per_topic: u32,
    /// Replicas per partition when the harness creates the topics (-1: the broker's
    /// `default.replication.factor`). OMB sets it in its driver file.
    pub replication_factor: i16,
    pub message_bytes: u32,
    pub payload: Payload,
    pub producers_per_topic: u32,
    /// Consumer groups per topic (0: no consumers, publish latency only).
    pub subscriptions_per_topic: u32,
    pub consumers_per_subscription: u32,
    pub assignment: Assignment,
    pub rate: Rate,
    pub acks: Acks,
    pub compression: Compression,
    pub batch_bytes_max: u32,
    pub linger: Duration,
    /// OMB's `keyDistributor` (see `keys`): keyed records go to their key's partition, so every
    /// Produce request carries a small batch for each partition; `NO_KEY` (the default) is
    /// Kafka's sticky partitioner, one partition per batch.
    pub key_distributor: KeyDistributor,
    /// `consumerBacklogSizeGB` in bytes (GiB, as OMB): consumers stay paused until the
    /// backlog is this large, then drain it while producers go on (0: no backlog phase).
    pub backlog_bytes: u64,
    /// OMB's `backlogDrainRatio`: the backlog counts as drained once this fraction of it is
    /// gone (1.0: all of it, down to OMB's floor of 1,000 messages).
    pub backlog_drain_ratio: f64,
    /// Produce requests in flight per producer (Kafka's max.in.flight.requests.per.connection).
    pub in_flight_max: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub sweep: Option<Sweep>,
    /// Configs of the topics the harness creates, in Kafka's names (`retention.ms`,
    /// `segment.bytes`, `cleanup.policy`); OMB keeps them in its driver file.
    pub topic_config: Vec<(String, String)>,
}

impl Workload {
    pub fn producers(&self) -> u32 {
        self.topics * self.producers_per_topic
    }

    pub fn consumers(&self) -> u32 {
        self.topics * self.subscriptions_per_topic * self.consumers_per_subscription
    }

    /// Total target rate in msgs/s (0: max).
    pub fn rate_per_s(&self) -> f64 {
        match self.rate {
            Rate::Max => 0.0,
            Rate::PerSecond(r) => r,
        }
    }
}

/// Reads and checks a workload file; relative payload files are found beside it.
pub fn load(path: &Path) -> Result<Workload> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|reason| Error::Workload { path: path.display().to_string(), reason })
}

/// Parses and checks workload YAML; the error is a sentence for the user.
pub fn parse(text: &str, base: &Path) -> Result<Workload, String> {
    let raw: RawWorkload = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    check(raw, base)
}

fn check(raw: RawWorkload, base: &Path) -> Result<Workload, String> {
    if raw.name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    within("topics", raw.topics, 1, TOPICS_MAX)?;
    within("partitionsPerTopic", raw.partitions_per_topic, 1, PARTITIONS_MAX)?;
    within("messageSize", raw.message_size, MESSAGE_BYTES_MIN, MESSAGE_BYTES_MAX)
        .map_err(|e| format!("{e} (the first 16 bytes carry the send timestamp)"))?;
    within("producersPerTopic", raw.producers_per_topic, 1, CLIENTS_MAX)?;
    within("subscriptionsPerTopic", raw.subscriptions_per_topic, 0, CLIENTS_MAX)?;
    within("consumerPerSubscription", raw.consumer_per_subscription, 1, CLIENTS_MAX)?;
    let key_distributor = match raw.key_distributor.as_deref() {
        None => KeyDistributor::NoKey,
        Some(k) => KeyDistributor::parse(k).ok_or_else(|| {
            format!("keyDistributor must be NO_KEY, KEY_ROUND_ROBIN or RANDOM_NANO (got {k:?})")
        })?,
    };
    if raw.randomized_payload_pool_size == Some(0) {
        return Err("randomizedPayloadPoolSize must be above 0".into());
    }
    let (backlog_bytes, backlog_drain_ratio) =
        backlog(raw.consumer_backlog_size_gb, raw.backlog_drain_ratio, raw.subscriptions_per_topic)?;
    let rate = rate(raw.producer_rate, raw.producer_rate_mbps, raw.message_size)?;
    let sweep = sweep(raw.rate_sweep, rate)?;
    let batch_bytes_max = raw.batch_size_bytes.unwrap_or(1 << 20);
    within("batchSizeBytes", batch_bytes_max, 1, BATCH_BYTES_MAX)?;
    let in_flight_max = raw.max_in_flight.unwrap_or(5);
    within("maxInFlight", in_flight_max, 1, IN_FLIGHT_MAX)?;
    let linger_ms = raw.linger_ms.unwrap_or(1.0);
    if !(0.0..=60_000.0).contains(&linger_ms) {
        return Err(format!("lingerMs must be between 0 and 60000 (got {linger_ms})"));
    }
    Ok(Workload {
        name: raw.name,
        description: raw.description,
        topics: raw.topics,
        partitions_per_topic: raw.partitions_per_topic,
        replication_factor: match raw.replication_factor {
            None => -1,
            Some(rf) if (1..=16).contains(&rf) => rf,
            Some(rf) => return Err(format!("replicationFactor must be between 1 and 16 (got {rf})")),
        },
        message_bytes: raw.message_size,
        payload: match (raw.use_randomized_payloads, raw.random_bytes_ratio) {
            (Some(true), ratio) => randomized(raw.payload.as_deref(), raw.payload_file.as_deref(), ratio)?,
            (_, Some(_)) => return Err("randomBytesRatio needs useRandomizedPayloads: true".into()),
            _ => payload(raw.payload.as_deref(), raw.payload_file.as_deref(), base)?,
        },
        producers_per_topic: raw.producers_per_topic,
        subscriptions_per_topic: raw.subscriptions_per_topic,
        consumers_per_subscription: raw.consumer_per_subscription,
        assignment: assignment(raw.consumer_assignment.as_deref())?,
        rate,
        acks: acks(raw.acks)?,
        compression: raw.compression.as_deref().unwrap_or("none").parse().map_err(|e| format!("{e}"))?,
        batch_bytes_max,
        linger: Duration::from_secs_f64(linger_ms / 1e3),
        key_distributor,
        backlog_bytes,
        backlog_drain_ratio,
        in_flight_max,
        warmup: duration("warmup", raw.warmup_duration_seconds, raw.warmup_duration_minutes, 5.0, true)?,
        duration: duration(
            "testDuration",
            raw.test_duration_seconds,
            raw.test_duration_minutes,
            60.0,
            false,
        )?,
        sweep,
        topic_config: raw.topic_config.iter().map(|(k, v)| (k.clone(), v.text())).collect(),
    })
}

fn within(field: &str, value: u32, min: u32, max: u32) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("{field} must be between {min} and {max} (got {value})"));
    }
    Ok(())
}

fn rate(msgs: Option<f64>, mbps: Option<f64>, message_bytes: u32) -> Result<Rate, String> {
    match (msgs, mbps) {
        (Some(_), Some(_)) => Err("give producerRate (msgs/s) or producerRateMBps, not both".into()),
        (Some(r), None) if !r.is_finite() || r < 0.0 => {
            Err(format!("producerRate must be 0 (max) or a positive number of msgs/s (got {r})"))
        }
        (Some(0.0), None) => Ok(Rate::Max),
        (Some(r), None) => Ok(Rate::PerSecond(r)),
        (None, Some(m)) if !m.is_finite() || m <= 0.0 => {
            Err(format!("producerRateMBps must be a positive number of MB/s (got {m})"))
        }
        (None, Some(m)) => Ok(Rate::PerSecond(m * 1e6 / f64::from(message_bytes))),
        (None, None) => Ok(Rate::Max),
    }
}

fn sweep(raw: Option<RawSweep>, rate: Rate) -> Result<Option<Sweep>, String> {
    let Some(raw) = raw else { return Ok(None) };
    if rate != Rate::Max {
        return Err("rateSweep sets the rates itself: leave producerRate out (or 0)".into());
    }
    if raw.fractions.is_empty() || raw.fractions.len() > 100 {
        return Err("rateSweep.fractions must list 1 to 100 fractions of the max rate".into());
    }
    if let Some(f) = raw.fractions.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
        return Err(format!("rateSweep.fractions must be in (0, 1] (got {f})"));
    }
    let probe = raw.probe_seconds.unwrap_or(10.0);
    if !(probe > 0.0 && probe <= DURATION_S_MAX) {
        return Err(format!("rateSweep.probeSeconds must be positive (got {probe})"));
    }
    Ok(Some(Sweep { fractions: raw.fractions, probe: Duration::from_secs_f64(probe) }))
}

fn backlog(gb: Option<f64>, drain_ratio: Option<f64>, subscriptions: u32) -> Result<(u64, f64), String> {
    let gb = gb.unwrap_or(0.0);
    if !(0.0..=BACKLOG_GB_MAX).contains(&gb) {
        return Err(format!("consumerBacklogSizeGB must be between 0 and {BACKLOG_GB_MAX} (got {gb})"));
    }
    if gb > 0.0 && subscriptions == 0 {
        return Err("consumerBacklogSizeGB needs consumers (subscriptionsPerTopic above 0)".into());
    }
    let ratio = drain_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!("backlogDrainRatio must be between 0 and 1 (got {ratio})"));
    }
    Ok(((gb * GIB) as u64, ratio))
}

fn randomized(kind: Option<&str>, file: Option<&str>, ratio: Option<f64>) -> Result<Payload, String> {
    if kind.is_some() || file.is_some() {
        return Err("useRandomizedPayloads and payload/payloadFile contradict".into());
    }
    let ratio = ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(format!("randomBytesRatio must be between 0 and 1 (got {ratio})"));
    }
    Ok(Payload::PartlyRandom(ratio))
}

fn payload(kind: Option<&str>, file: Option<&str>, base: &Path) -> Result<Payload, String> {
    match (kind, file) {
        (Some(k), Some(_)) if k != "file" => Err(format!("payload {k:?} and payloadFile contradict")),
        (_, Some(f)) => Ok(Payload::File(payload_path(f, base))),
        (None | Some("random"), None) => Ok(Payload::Random),
        (Some("zeros"), None) => Ok(Payload::Zeros),
        (Some("file"), None) => Err("payload: file needs payloadFile".into()),
        (Some(k), None) => Err(format!("payload must be random, zeros or file (got {k:?})")),
    }
}

/// A payload file beside the workload, or where OMB's files name it: relative to the
/// repository root (`payload/payload-1Kb.data` from `workloads/x.yaml`), i.e. the workload
/// directory's parent, or the current directory. The first that exists; else beside the
/// workload (and the run says it is missing).
fn payload_path(file: &str, base: &Path) -> PathBuf {
    let candidates = [Some(base.join(file)), base.parent().map(|p| p.join(file)), Some(PathBuf::from(file))];
    let existing = candidates.iter().flatten().find(|p| p.is_file()).cloned();
    existing.unwrap_or_else(|| base.join(file))
}

fn assignment(value: Option<&str>) -> Result<Assignment, String> {
    match value.unwrap_or("group") {
        "group" => Ok(Assignment::Group),
        "static" => Ok(Assignment::Static),
        other => Err(format!("consumerAssignment must be group or static (got {other:?})")),
    }
}

fn acks(value: Option<AcksValue>) -> Result<Acks, String> {
    let text = match value {
        None => return Ok(Acks::All),
        Some(AcksValue::Number(n)) => n.to_string(),
        Some(AcksValue::Text(t)) => t,
    };
    text.parse().map_err(|e| format!("{e}"))
}

fn duration(
    field: &str,
    seconds: Option<f64>,
    minutes: Option<f64>,
    default_s: f64,
    zero_ok: bool,
) -> Result<Duration, String> {
    let s = match (seconds, minutes) {
        (Some(_), Some(_)) => return Err(format!("give {field}Seconds or {field}Minutes, not both")),
        (Some(s), None) => s,
        (None, Some(m)) => m * 60.0,
        (None, None) => default_s,
    };
    let least_ok = if zero_ok { s >= 0.0 } else { s > 0.0 };
    if !s.is_finite() || !least_ok || s > DURATION_S_MAX {
        let least = if zero_ok { "0" } else { "above 0" };
        return Err(format!("{field} must be {least} and at most 7 days (got {s} s)"));
    }
    Ok(Duration::from_secs_f64(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(yaml: &str) -> Workload {
        parse(yaml, Path::new("/w")).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    fn parse_err(yaml: &str) -> String {
        match parse(yaml, Path::new("/w")) {
            Ok(w) => panic!("accepted {w:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_full_workload_reads_with_every_field() {
        let w = parse_ok(
            "name: fan-out\ntopics: 2\npartitionsPerTopic: 16\nmessageSize: 1024\n\
             payloadFile: payload/1k.data\nproducersPerTopic: 3\nsubscriptionsPerTopic: 4\n\
             consumerPerSubscription: 2\nproducerRate: 50000\nacks: 1\ncompression: lz4\n\
             batchSizeBytes: 65536\nlingerMs: 5\nmaxInFlight: 8\nwarmupDurationSeconds: 2\n\
             testDurationMinutes: 1.5\nconsumerAssignment: static\nkeyDistributor: NO_KEY\n",
        );
        assert_eq!((w.topics, w.partitions_per_topic, w.message_bytes), (2, 16, 1024));
        assert_eq!(w.payload, Payload::File(PathBuf::from("/w/payload/1k.data")));
        assert_eq!((w.producers(), w.consumers()), (6, 16));
        assert_eq!(w.rate, Rate::PerSecond(50_000.0));
        assert_eq!((w.acks, w.compression), (Acks::Leader, Compression::Lz4));
        assert_eq!((w.batch_bytes_max, w.in_flight_max), (65536, 8));
        assert_eq!(w.linger, Duration::from_millis(5));
        assert_eq!((w.warmup, w.duration), (Duration::from_secs(2), Duration::from_secs(90)));
        assert_eq!(w.assignment, Assignment::Static);
    }

    #[test]
    fn defaults_follow_kafka_and_omb() {
        let w = parse_ok("name: x\nmessageSize: 100\n");
        assert_eq!((w.topics, w.partitions_per_topic, w.producers_per_topic), (1, 1, 1));
        assert_eq!((w.subscriptions_per_topic, w.consumers_per_subscription), (1, 1));
        assert_eq!(w.rate, Rate::Max);
        assert_eq!(
            (w.acks, w.compression, w.payload.clone()),
            (Acks::All, Compression::None, Payload::Random)
        );
        assert_eq!((w.batch_bytes_max, w.in_flight_max, w.linger), (1 << 20, 5, Duration::from_millis(1)));
        assert_eq!((w.warmup, w.duration), (Duration::from_secs(5), Duration::from_secs(60)));
        assert_eq!(w.assignment, Assignment::Group);
        assert!(w.sweep.is_none());
    }

    #[test]
    fn acks_read_as_numbers_or_words() {
        for (text, acks) in [("all", Acks::All), ("-1", Acks::All), ("1", Acks::Leader), ("0", Acks::None)] {
            assert_eq!(parse_ok(&format!("name: x\nmessageSize: 100\nacks: {text}\n")).acks, acks);
        }
        assert!(parse_err("name: x\nmessageSize: 100\nacks: 2\n").contains("acks must be 0, 1 or all"));
    }

    #[test]
    fn rates_in_megabytes_become_messages() {
        let w = parse_ok("name: x\nmessageSize: 1000\nproducerRateMBps: 50\n");
        assert_eq!(w.rate, Rate::PerSecond(50_000.0));
        assert_eq!(parse_ok("name: x\nmessageSize: 100\nproducerRate: 0\n").rate, Rate::Max);
        assert!(parse_err("name: x\nmessageSize: 100\nproducerRate: 5\nproducerRateMBps: 1\n")
            .contains("not both"));
        assert!(parse_err("name: x\nmessageSize: 100\nproducerRate: -5\n").contains("producerRate must be"));
    }

    #[test]
    fn sweeps_need_fractions_and_no_fixed_rate() {
        let w = parse_ok(
            "name: x\nmessageSize: 100\nrateSweep:\n  fractions: [0.1, 0.5, 0.9]\n  probeSeconds: 3\n",
        );
        assert_eq!(w.sweep, Some(Sweep { fractions: vec![0.1, 0.5, 0.9], probe: Duration::from_secs(3) }));
        assert!(parse_err("name: x\nmessageSize: 100\nrateSweep:\n  fractions: [1.5]\n").contains("(0, 1]"));
        assert!(parse_err("name: x\nmessageSize: 100\nrateSweep:\n  fractions: []\n").contains("1 to 100"));
        assert!(parse_err("name: x\nmessageSize: 100\nproducerRate: 10\nrateSweep:\n  fractions: [0.5]\n")
            .contains("leave producerRate out"));
    }

    #[test]
    fn invalid_files_say_what_is_wrong_and_where() {
        let typo = parse_err("name: x\nmessageSize: 100\npartitions: 4\n");
        assert!(typo.contains("unknown field `partitions`") && typo.contains("line 3"), "{typo}");
        assert!(parse_err("messageSize: 100\n").contains("missing field `name`"));
        assert!(parse_err("name: x\nmessageSize: many\n").contains("messageSize"));
        assert!(parse_err("name: x\nmessageSize: 8\n").contains("messageSize must be between 16"));
        assert!(parse_err("name: x\nmessageSize: 100\ntopics: 0\n").contains("topics must be between 1"));
        assert!(parse_err("name: x\nmessageSize: 100\ncompression: brotli\n").contains("unknown compression"));
        assert!(parse_err("name: x\nmessageSize: 100\ntestDurationSeconds: 0\n")
            .contains("testDuration must be above 0"));
        assert!(parse_err("name: x\nmessageSize: 100\nlingerMs: -1\n").contains("lingerMs"));
        assert!(parse_err("name: x\nmessageSize: 100\nkeyDistributor: HASHED\n").contains("RANDOM_NANO"));
        assert!(parse_err("name: x\nmessageSize: 100\nconsumerBacklogSizeGB: 1\nsubscriptionsPerTopic: 0\n")
            .contains("needs consumers"));
        assert!(parse_err("name: x\nmessageSize: 100\nbacklogDrainRatio: 2\n").contains("backlogDrainRatio"));
        assert!(
            parse_err("name: x\nmessageSize: 100\nrandomBytesRatio: 0.5\n").contains("useRandomizedPayloads")
        );
        assert!(
            parse_err("name: x\nmessageSize: 100\nconsumerAssignment: sticky\n").contains("group or static")
        );
        assert!(parse_err("name: x\nmessageSize: 100\npayload: text\n").contains("random, zeros or file"));
        assert!(parse_err("name: [unclosed\n").contains("line"));
        assert!(parse_err("name: \" \"\nmessageSize: 100\n").contains("name must not be empty"));
    }

    #[test]
    fn omb_workload_files_read_as_they_are() {
        // OMB's workloads/1-topic-16-partitions-1kb.yaml.
        let w = parse_ok(
            "name: 1 topic / 16 partitions / 1Kb\n\ntopics: 1\npartitionsPerTopic: 16\nmessageSize: 1024\n\
             payloadFile: \"payload/payload-1Kb.data\"\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 1\n\
             producersPerTopic: 1\nproducerRate: 50000\nconsumerBacklogSizeGB: 0\ntestDurationMinutes: 15\n",
        );
        assert_eq!(w.duration, Duration::from_secs(900));
        assert_eq!(w.rate, Rate::PerSecond(50_000.0));
    }

    #[test]
    fn key_distributors_backlogs_and_randomized_payloads_read_as_omb_writes_them() {
        for (name, d) in [
            ("NO_KEY", KeyDistributor::NoKey),
            ("KEY_ROUND_ROBIN", KeyDistributor::KeyRoundRobin),
            ("RANDOM_NANO", KeyDistributor::RandomNano),
        ] {
            assert_eq!(
                parse_ok(&format!("name: x\nmessageSize: 100\nkeyDistributor: {name}\n")).key_distributor,
                d
            );
        }
        assert_eq!(parse_ok("name: x\nmessageSize: 100\n").key_distributor, KeyDistributor::NoKey);
        // OMB's workloads/max-rate-1-topic-1-partition-1p-1c-backlog-... shape, every field.
        let w = parse_ok(
            "name: backlog\ntopics: 100\npartitionsPerTopic: 1\nkeyDistributor: RANDOM_NANO\nmessageSize: 1024\n\
             useRandomizedPayloads: true\nrandomBytesRatio: 0.5\nrandomizedPayloadPoolSize: 1000\n\
             subscriptionsPerTopic: 1\nconsumerPerSubscription: 1\nproducersPerTopic: 50\nproducerRate: 100000\n\
             consumerBacklogSizeGB: 2\nbacklogDrainRatio: 0.9\ntestDurationMinutes: 15\nwarmupDurationMinutes: 1\n",
        );
        assert_eq!((w.topics, w.producers(), w.consumers()), (100, 5000, 100));
        assert_eq!((w.backlog_bytes, w.backlog_drain_ratio), (2 << 30, 0.9));
        assert_eq!(w.payload, Payload::PartlyRandom(0.5));
        assert_eq!((w.warmup, w.duration), (Duration::from_secs(60), Duration::from_secs(900)));
        assert_eq!(
            parse_ok("name: x\nmessageSize: 100\nconsumerBacklogSizeGB: 0.25\n").backlog_bytes,
            1 << 28
        );
        assert_eq!(parse_ok("name: x\nmessageSize: 100\n").backlog_bytes, 0);
        let w = parse_ok(
            "name: x\nmessageSize: 100\ntopicConfig:\n  retention.ms: 60000\n  cleanup.policy: compact\n",
        );
        let want = [("cleanup.policy", "compact"), ("retention.ms", "60000")];
        assert_eq!(w.topic_config, want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec());
        // OMB's payload paths are relative to its repository root, beside `workloads/`.
        let root = std::env::temp_dir().join(format!("rb-omb-{}", std::process::id()));
        std::fs::create_dir_all(root.join("payload")).expect("mkdir");
        std::fs::create_dir_all(root.join("workloads")).expect("mkdir");
        std::fs::write(root.join("payload/payload-1Kb.data"), b"x").expect("write");
        let found = payload_path("payload/payload-1Kb.data", &root.join("workloads"));
        assert_eq!(found, root.join("payload/payload-1Kb.data"));
        assert!(found.is_file());
        let _ = std::fs::remove_dir_all(root);
        // Soak runs go past a day.
        assert_eq!(
            parse_ok("name: x\nmessageSize: 100\ntestDurationMinutes: 2880\n").duration.as_secs(),
            172_800
        );
    }
}
