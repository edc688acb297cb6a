//! Client telemetry (KIP-714): clients ask which of their metrics to push
//! (GetTelemetrySubscriptions), then push them every interval (PushTelemetry) as OpenTelemetry
//! metrics; the broker keeps each client instance's latest values and exposes them on
//! /metrics as `kafka_client_*` series labelled with the client instance.
//!
//! Which clients push what is set by client-metrics subscriptions (`subscription`). The state
//! of client instances is per broker (a client pushes to one broker) and bounded: instances
//! that stop pushing are forgotten after three intervals (at least a minute), and at most
//! `MAX_INSTANCES` are kept.

pub mod otlp;
pub mod subscription;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use subscription::{ClientInfo, Subscription};

/// Client instances kept at most; the one heard from longest ago goes first.
const MAX_INSTANCES: usize = 10_000;
/// Compression types pushes may use, in the order Kafka offers them (zstd, lz4, gzip, snappy).
pub const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];
/// A decompressed payload larger than this is refused (a compression bomb).
const MAX_DECOMPRESSED: usize = 64 << 20;

/// What a client is told to push.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub instance_id: uuid::Uuid,
    pub subscription_id: i32,
    pub push_interval_ms: i32,
    /// Metric name prefixes; `["*"]` for all; empty for none.
    pub requested_metrics: Vec<String>,
}

/// Why a push is refused, as Kafka's error codes name it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("unknown or outdated subscription id")]
    UnknownSubscription,
    #[error("pushed before the push interval elapsed")]
    TooEarly,
    #[error("payload larger than telemetry.max.bytes")]
    TooLarge,
    #[error("compression type {0} is not accepted")]
    UnsupportedCompression(i8),
    #[error("{0}")]
    InvalidRecord(String),
    #[error("{0}")]
    InvalidRequest(String),
}

impl PushError {
    pub fn code(&self) -> i16 {
        match self {
            PushError::UnknownSubscription => 117,      // UNKNOWN_SUBSCRIPTION_ID
            PushError::TooEarly => 89,                  // THROTTLING_QUOTA_EXCEEDED
            PushError::TooLarge => 118,                 // TELEMETRY_TOO_LARGE
            PushError::UnsupportedCompression(_) => 76, // UNSUPPORTED_COMPRESSION_TYPE
            PushError::InvalidRecord(_) => 87,          // INVALID_RECORD
            PushError::InvalidRequest(_) => 42,         // INVALID_REQUEST
        }
    }
}

type SeriesKey = (String, Vec<(String, String)>);

struct Instance {
    client: ClientInfo,
    last_seen: Instant,
    /// Forgotten when not heard from for this long: three intervals, at least a minute.
    ttl: Duration,
    last_push: Option<Instant>,
    terminated: bool,
    series: BTreeMap<SeriesKey, (otlp::Kind, f64)>,
}

#[derive(Default)]
struct State {
    subscriptions: Vec<Subscription>,
    instances: HashMap<uuid::Uuid, Instance>,
    /// When instances were last checked for expiry (at most once a second: it visits all).
    expired_at: Option<Instant>,
}

fn ttl(interval_ms: i32) -> Duration {
    Duration::from_millis(interval_ms.max(0) as u64 * 3).max(Duration::from_secs(60))
}

/// The broker's client-telemetry state.
#[derive(Default)]
pub struct Telemetry {
    state: Mutex<State>,
}

/// The subscriptions that select a client, merged: the union of their metrics, the shortest
/// interval, and an id that changes whenever any of that does.
fn merged(subscriptions: &[Subscription], client: &ClientInfo) -> (i32, i32, Vec<String>) {
    let selected: Vec<&Subscription> = subscriptions.iter().filter(|s| s.selects(client)).collect();
    let mut metrics: Vec<String> = selected.iter().flat_map(|s| s.metrics.iter().cloned()).collect();
    metrics.sort();
    metrics.dedup();
    if metrics.iter().any(|m| m == subscription::ALL) {
        metrics = vec![subscription::ALL.to_string()];
    }
    let interval = selected
        .iter()
        .filter(|s| !s.metrics.is_empty())
        .map(|s| s.interval_ms)
        .min()
        .unwrap_or(subscription::DEFAULT_INTERVAL_MS);
    let mut h = crc32fast::Hasher::new();
    for m in &metrics {
        h.update(m.as_bytes());
        h.update(b",");
    }
    h.update(&interval.to_be_bytes());
    (h.finalize() as i32, interval, metrics)
}

impl Telemetry {
    /// Takes the subscriptions of a newly applied metadata image (invalid ones, which the
    /// admin path refuses, are skipped).
    pub fn configure(&self, configs: &BTreeMap<String, BTreeMap<String, String>>) {
        let subscriptions = configs
            .iter()
            .filter_map(|(name, c)| match Subscription::parse(name, c) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("client-metrics subscription {name} skipped: {e}");
                    None
                }
            })
            .collect();
        self.state.lock().unwrap_or_else(|e| e.into_inner()).subscriptions = subscriptions;
    }

    /// GetTelemetrySubscriptions: what this client instance is to push (a new instance id
    /// when it has none yet).
    pub fn subscribe(&self, id: uuid::Uuid, mut client: ClientInfo, now: Instant) -> Offer {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        expire(&mut state, now);
        let id = if id.is_nil() { new_instance_id() } else { id };
        client.instance_id = id.to_string();
        let (subscription_id, push_interval_ms, requested_metrics) = merged(&state.subscriptions, &client);
        let instance = state.instances.entry(id).or_insert_with(|| Instance {
            client: client.clone(),
            last_seen: now,
            ttl: ttl(push_interval_ms),
            last_push: None,
            terminated: false,
            series: BTreeMap::new(),
        });
        instance.client = client;
        instance.last_seen = now;
        instance.ttl = ttl(push_interval_ms);
        instance.terminated = false;
        bound(&mut state);
        Offer { instance_id: id, subscription_id, push_interval_ms, requested_metrics }
    }

    /// PushTelemetry: checks the push as Kafka does and keeps its values.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &self,
        id: uuid::Uuid,
        mut client: ClientInfo,
        subscription_id: i32,
        terminating: bool,
        compression: i8,
        payload: &[u8],
        max_bytes: usize,
        now: Instant,
    ) -> Result<usize, PushError> {
        if id.is_nil() {
            return Err(PushError::InvalidRequest("a push needs the client instance id".into()));
        }
        if payload.len() > max_bytes {
            return Err(PushError::TooLarge);
        }
        if compression != 0 && !ACCEPTED_COMPRESSION.contains(&compression) {
            return Err(PushError::UnsupportedCompression(compression));
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        expire(&mut state, now);
        client.instance_id = id.to_string();
        let (current, interval, _) = merged(&state.subscriptions, &client);
        if subscription_id != current {
            return Err(PushError::UnknownSubscription);
        }
        let instance = state.instances.entry(id).or_insert_with(|| Instance {
            client: client.clone(),
            last_seen: now,
            ttl: ttl(interval),
            last_push: None,
            terminated: false,
            series: BTreeMap::new(),
        });
        if instance.terminated {
            return Err(PushError::InvalidRequest(
                "the client instance already sent its terminating push".into(),
            ));
        }
        // Kafka refuses a push that comes well before its interval (clients add jitter, so
        // half an interval is allowed); a terminating push may come at any time.
        let early = instance
            .last_push
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(interval as u64 / 2));
        if early && !terminating {
            return Err(PushError::TooEarly);
        }
        instance.client = client;
        instance.last_seen = now;
        instance.ttl = ttl(interval);
        instance.last_push = Some(now);
        instance.terminated = terminating;
        let decompressed;
        let raw = match compression {
            0 => payload,
            codec => {
                decompressed =
                    riptide_engine::compression::decompress(codec as u8, payload, MAX_DECOMPRESSED).map_err(
                        |e| PushError::InvalidRecord(format!("cannot decompress the metrics: {e}")),
                    )?;
                &decompressed[..]
            }
        };
        let decoded = otlp::decode(raw).map_err(|e| PushError::InvalidRecord(e.to_string()))?;
        let n = decoded.points.len();
        // Cumulative temporality: every push is the client's whole state, so it replaces the
        // last one (which also bounds an instance's series by what one push can hold).
        instance.series =
            decoded.points.into_iter().map(|p| ((p.metric, p.attributes), (p.kind, p.value))).collect();
        bound(&mut state);
        Ok(n)
    }

    /// The client instances known now.
    pub fn instances(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).instances.len()
    }

    /// Appends every client's latest values in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        expire(&mut state, Instant::now());
        // Prometheus wants each family's samples together, under one TYPE line.
        let mut families: BTreeMap<String, (otlp::Kind, Vec<String>)> = BTreeMap::new();
        for (id, instance) in &state.instances {
            let c = &instance.client;
            let base = format!(
                "client_instance_id=\"{id}\",client_id=\"{}\",client_software_name=\"{}\",client_software_version=\"{}\"",
                escape(&c.client_id),
                escape(&c.software_name),
                escape(&c.software_version)
            );
            for ((metric, attributes), (kind, value)) in &instance.series {
                let family = family_name(metric);
                let mut labels = base.clone();
                for (k, v) in attributes {
                    let _ = write!(labels, ",{}=\"{}\"", label_name(k), escape(v));
                }
                let entry = families.entry(family.clone()).or_insert((*kind, Vec::new()));
                entry.1.push(format!("{family}{{{labels}}} {value}"));
            }
        }
        let _ = writeln!(out, "# TYPE riptide_client_telemetry_instances gauge");
        let _ = writeln!(out, "riptide_client_telemetry_instances {}", state.instances.len());
        for (family, (kind, lines)) in families {
            let t = if kind == otlp::Kind::Counter { "counter" } else { "gauge" };
            let _ = writeln!(out, "# TYPE {family} {t}");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    }
}

/// A random (version 4) UUID for a new client instance.
fn new_instance_id() -> uuid::Uuid {
    let mut b = [0u8; 16];
    // The system's randomness failing is not something a client could act on: fall back to
    // the clock, still unique enough to tell instances apart.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b = nanos.to_be_bytes();
    }
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// Forgets instances not heard from for three of their intervals (at least a minute).
fn expire(state: &mut State, now: Instant) {
    if state.expired_at.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1)) {
        return;
    }
    state.expired_at = Some(now);
    state.instances.retain(|_, i| now.saturating_duration_since(i.last_seen) < i.ttl);
}

/// Keeps at most `MAX_INSTANCES`, dropping those heard from longest ago.
fn bound(state: &mut State) {
    while state.instances.len() > MAX_INSTANCES {
        let Some(oldest) = state.instances.iter().min_by_key(|(_, i)| i.last_seen).map(|(id, _)| *id) else {
            return;
        };
        state.instances.remove(&oldest);
    }
}

/// `org.apache.kafka.producer.node.request.latency.avg` -> `kafka_client_producer_node_request_latency_avg`.
fn family_name(metric: &str) -> String {
    let short = metric.strip_prefix("org.apache.kafka.").unwrap_or(metric);
    format!("kafka_client_{}", label_name(short))
}

fn label_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions(pairs: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|(n, c)| (n.to_string(), c.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
            .collect()
    }

    fn client(id: &str) -> ClientInfo {
        ClientInfo { client_id: id.into(), software_name: "librdkafka".into(), ..Default::default() }
    }

    #[test]
    fn subscribe_push_and_render() {
        let t = Telemetry::default();
        let now = Instant::now();
        // No subscription: nothing requested, the default interval.
        let offer = t.subscribe(uuid::Uuid::nil(), client("app"), now);
        assert!(offer.requested_metrics.is_empty());
        assert_eq!(offer.push_interval_ms, 300_000);
        assert!(!offer.instance_id.is_nil());
        t.configure(&subscriptions(&[("all", &[("metrics", "*"), ("interval.ms", "1000")])]));
        let offer = t.subscribe(offer.instance_id, client("app"), now);
        assert_eq!(offer.requested_metrics, vec!["*".to_string()]);
        assert_eq!(offer.push_interval_ms, 1000);
        let payload = otlp::encode::metrics(
            ("org.apache.kafka.producer.node.request.latency.avg", 2.5, &[("node.id", "1")]),
            ("org.apache.kafka.producer.connection.creation.total", 3),
        );
        let push = |sub, at, terminating| {
            t.push(offer.instance_id, client("app"), sub, terminating, 0, &payload, 1 << 20, at)
        };
        assert_eq!(push(offer.subscription_id ^ 1, now, false), Err(PushError::UnknownSubscription));
        assert_eq!(push(offer.subscription_id, now, false), Ok(2));
        assert_eq!(
            push(offer.subscription_id, now + Duration::from_millis(100), false),
            Err(PushError::TooEarly)
        );
        let zstd = riptide_engine::compression::compress(4, &payload).unwrap();
        let later = now + Duration::from_millis(900);
        assert_eq!(
            t.push(offer.instance_id, client("app"), offer.subscription_id, false, 4, &zstd, 1 << 20, later),
            Ok(2)
        );
        assert_eq!(
            t.push(offer.instance_id, client("app"), offer.subscription_id, false, 9, &zstd, 1 << 20, later),
            Err(PushError::UnsupportedCompression(9))
        );
        assert_eq!(
            t.push(offer.instance_id, client("app"), offer.subscription_id, false, 0, &zstd, 4, later),
            Err(PushError::TooLarge)
        );
        let mut out = String::new();
        t.render(&mut out);
        let id = offer.instance_id;
        assert!(out.contains("# TYPE kafka_client_producer_node_request_latency_avg gauge"), "{out}");
        assert!(out.contains(&format!(
            "kafka_client_producer_node_request_latency_avg{{client_instance_id=\"{id}\",client_id=\"app\",client_software_name=\"librdkafka\",client_software_version=\"\",node_id=\"1\"}} 2.5"
        )), "{out}");
        assert!(out.contains("# TYPE kafka_client_producer_connection_creation_total counter"), "{out}");
        // A changed subscription changes the id: the client must ask again.
        t.configure(&subscriptions(&[("all", &[("metrics", "*"), ("interval.ms", "2000")])]));
        assert_eq!(
            push(offer.subscription_id, now + Duration::from_secs(5), false),
            Err(PushError::UnknownSubscription)
        );
        // Forgotten after three intervals (at least a minute) of silence.
        t.subscribe(uuid::Uuid::nil(), client("other"), now + Duration::from_secs(10));
        t.render(&mut String::new());
        assert_eq!(t.instances(), 2);
        t.subscribe(uuid::Uuid::nil(), client("late"), now + Duration::from_secs(65));
        assert_eq!(t.instances(), 2, "the first instance expired");
    }

    #[test]
    fn matching_and_merging() {
        let subs = subscriptions(&[
            (
                "producers",
                &[
                    ("metrics", "org.apache.kafka.producer."),
                    ("interval.ms", "5000"),
                    ("match", "client_id=p-.*"),
                ],
            ),
            (
                "fast",
                &[
                    ("metrics", "org.apache.kafka.producer.node"),
                    ("interval.ms", "1000"),
                    ("match", "client_id=p-1"),
                ],
            ),
        ]);
        let parsed: Vec<Subscription> =
            subs.iter().map(|(n, c)| Subscription::parse(n, c).unwrap()).collect();
        let (id1, interval, metrics) = merged(&parsed, &client("p-1"));
        assert_eq!(interval, 1000);
        assert_eq!(metrics, vec!["org.apache.kafka.producer.", "org.apache.kafka.producer.node"]);
        let (id2, interval, _) = merged(&parsed, &client("p-2"));
        assert_eq!(interval, 5000);
        assert_ne!(id1, id2);
        let (_, interval, metrics) = merged(&parsed, &client("c-1"));
        assert!(metrics.is_empty());
        assert_eq!(interval, 300_000);
    }
}
