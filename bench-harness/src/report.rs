//! Results: percentiles, time series and the JSON file. Field names follow the OpenMessaging
//! Benchmark's result files where it has one (`publishRate`, `consumeRate`, `backlog`,
//! `aggregatedPublishLatency…`, `endToEndLatency…`), grouped into objects rather than OMB's
//! flat `publishLatency99pct` keys. Latencies are in milliseconds, as in OMB; rates in msgs/s
//! and MB/s (10^6 bytes). The whole measured-window histograms are kept too (HdrHistogram V2
//! with deflate, hex), so a later `compare` can re-plot or merge them exactly.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::backlog::BacklogDrain;
use crate::baseline::Baseline;
use crate::error::{Error, Result};
use crate::segments::SegmentEvent;
pub use crate::stats::{percentiles, Percentiles};
use crate::stats::{Interval, Totals};
use crate::windows::{stability, Stability, WindowStats};

pub const FORMAT_VERSION: u32 = 1;

/// Points of the percentile curve, evenly spaced on the usual log axis ("nines"): percentile
/// 100·(1 − 10^(−k/8)) for k = 0..=48 (0 % to 99.9999 %) and 100 %; `[percentile, ms]`.
pub fn quantile_curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<[f64; 2]> = (0..=48)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / 8.0);
            [q * 100.0, h.value_at_quantile(q) as f64 / 1e3]
        })
        .collect();
    out.push([100.0, h.max() as f64 / 1e3]);
    out
}

/// Per-second latency series (ms), one entry per sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySeries {
    pub avg: Vec<f64>,
    pub p50: Vec<f64>,
    /// p75, p95, p99.99 and p99.999 are absent in results written before them.
    #[serde(default)]
    pub p75: Vec<f64>,
    #[serde(default)]
    pub p95: Vec<f64>,
    pub p99: Vec<f64>,
    pub p999: Vec<f64>,
    #[serde(default)]
    pub p9999: Vec<f64>,
    #[serde(default)]
    pub p99999: Vec<f64>,
    pub max: Vec<f64>,
}

impl LatencySeries {
    fn push(&mut self, p: &Percentiles) {
        self.avg.push(p.avg);
        self.p50.push(p.p50);
        self.p75.push(p.p75);
        self.p95.push(p.p95);
        self.p99.push(p.p99);
        self.p999.push(p.p999);
        self.p9999.push(p.p9999);
        self.p99999.push(p.p99999);
        self.max.push(p.max);
    }
}

/// What the run was, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunConfig {
    pub workload: String,
    pub workload_file: String,
    /// What was measured: `riptide (spawned)`, `discard broker`, or the broker address.
    pub target: String,
    pub driver: String,
    pub message_size: u32,
    pub topics: u32,
    pub partitions_per_topic: u32,
    pub producers_per_topic: u32,
    pub subscriptions_per_topic: u32,
    pub consumers_per_subscription: u32,
    pub consumer_assignment: String,
    /// msgs/s over all producers; 0 = as fast as possible.
    pub target_rate: f64,
    pub acks: String,
    pub compression: String,
    pub batch_size_bytes: u32,
    pub linger_ms: f64,
    /// OMB's keyDistributor: NO_KEY (sticky, one partition per batch), KEY_ROUND_ROBIN or
    /// RANDOM_NANO (keyed: murmur2 partitions); absent in results written before it.
    #[serde(default)]
    pub key_distributor: String,
    pub max_in_flight: u32,
    pub warmup_seconds: f64,
    pub test_duration_seconds: f64,
    pub harness_threads: u32,
}

/// CPU time used during the whole run (warm-up included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuUse {
    pub wall_seconds: f64,
    pub harness_cpu_seconds: f64,
    pub broker_cpu_seconds: Option<f64>,
    pub cores: u32,
    /// The broker's peak resident memory during the run (a local broker only).
    #[serde(default)]
    pub broker_peak_rss_bytes: Option<u64>,
}

/// One result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub format_version: u32,
    pub tool: String,
    pub started_at_unix_ms: i64,
    pub config: RunConfig,
    pub sample_seconds: f64,
    /// Per sample: `warmup`, `measure` or `drain` (consumers catching up after the end).
    pub phase: Vec<String>,
    pub publish_rate: Vec<f64>,
    #[serde(rename = "publishMBps")]
    pub publish_mbps: Vec<f64>,
    pub consume_rate: Vec<f64>,
    #[serde(rename = "consumeMBps")]
    pub consume_mbps: Vec<f64>,
    /// Messages published (times subscriptions) not yet consumed, at the end of each sample.
    pub backlog: Vec<i64>,
    /// Messages the producers were behind their schedule at the end of each sample.
    pub producer_lag: Vec<u64>,
    pub errors_per_sample: Vec<u64>,
    pub publish_latency: LatencySeries,
    pub end_to_end_latency: LatencySeries,
    pub aggregated_publish_rate: f64,
    #[serde(rename = "aggregatedPublishMBps")]
    pub aggregated_publish_mbps: f64,
    pub aggregated_consume_rate: f64,
    #[serde(rename = "aggregatedConsumeMBps")]
    pub aggregated_consume_mbps: f64,
    pub aggregated_publish_latency: Percentiles,
    pub aggregated_end_to_end_latency: Percentiles,
    /// How late scheduled producers woke against their plan (the harness's own delay).
    #[serde(default)]
    pub harness_wake_lateness: Percentiles,
    pub publish_latency_quantiles: Vec<[f64; 2]>,
    pub end_to_end_latency_quantiles: Vec<[f64; 2]>,
    /// Failed messages over the whole run, and by kind.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub cpu: CpuUse,
    pub baseline: Option<Baseline>,
    pub notes: Vec<String>,
    /// Measured-window histograms (µs), HdrHistogram V2 + deflate, hex.
    pub publish_histogram: String,
    pub end_to_end_histogram: String,
    /// Percentiles per window (a minute unless asked otherwise), for soak runs; absent in
    /// results written before them.
    #[serde(default)]
    pub windows: Vec<WindowStats>,
    #[serde(default)]
    pub stability: Stability,
    /// 10-second windows (OMB's stats interval), for OMB's result file.
    #[serde(default)]
    pub omb_windows: Vec<WindowStats>,
    /// The wake lateness's percentile curve (OMB's publish-delay quantiles).
    #[serde(default)]
    pub harness_wake_lateness_quantiles: Vec<[f64; 2]>,
    /// The backlog-drain test's outcome (`consumerBacklogSizeGB`).
    #[serde(default)]
    pub backlog_drain: Option<BacklogDrain>,
    /// Segment deletions and compactions seen in the broker's data directory.
    #[serde(default)]
    pub segment_events: Vec<SegmentEvent>,
}

/// One second of the run, all threads merged, as kept: counters and percentiles (a second's
/// histograms are folded into its window and dropped, or a long run would not fit memory).
#[derive(Debug, Clone)]
pub struct Sample {
    pub phase: &'static str,
    pub published_msgs: u64,
    pub published_bytes: u64,
    pub consumed_msgs: u64,
    pub consumed_bytes: u64,
    pub errors: u64,
    pub behind_msgs: u64,
    pub publish: Percentiles,
    pub e2e: Percentiles,
}

impl Sample {
    pub fn of(phase: &'static str, i: &Interval) -> Sample {
        Sample {
            phase,
            published_msgs: i.published_msgs,
            published_bytes: i.published_bytes,
            consumed_msgs: i.consumed_msgs,
            consumed_bytes: i.consumed_bytes,
            errors: i.errors,
            behind_msgs: i.behind_msgs,
            publish: percentiles(&i.publish),
            e2e: percentiles(&i.e2e),
        }
    }
}

/// Everything measured, before it becomes a `RunResult`.
pub struct Measurement<'a> {
    pub config: RunConfig,
    pub started_at_unix_ms: i64,
    pub samples: &'a [Sample],
    pub totals: &'a Totals,
    pub cpu: CpuUse,
    pub baseline: Option<Baseline>,
    pub notes: Vec<String>,
    pub windows: Vec<WindowStats>,
    pub window_seconds: u64,
    pub omb_windows: Vec<WindowStats>,
}

impl RunResult {
    pub fn from_measurement(m: Measurement<'_>) -> RunResult {
        let mut r = RunResult::empty(m.config, m.started_at_unix_ms);
        let subscriptions = i64::from(r.config.subscriptions_per_topic);
        let (mut published, mut consumed) = (0i64, 0i64);
        for i in m.samples {
            r.phase.push(i.phase.to_string());
            r.publish_rate.push(i.published_msgs as f64);
            r.publish_mbps.push(i.published_bytes as f64 / 1e6);
            r.consume_rate.push(i.consumed_msgs as f64);
            r.consume_mbps.push(i.consumed_bytes as f64 / 1e6);
            published += i.published_msgs as i64;
            consumed += i.consumed_msgs as i64;
            // A consumer can see a message a moment before its producer has the ack, so the
            // difference can dip below zero within a second: that is not a backlog.
            r.backlog.push((published * subscriptions - consumed).max(0));
            r.producer_lag.push(i.behind_msgs);
            r.errors_per_sample.push(i.errors);
            r.publish_latency.push(&i.publish);
            r.end_to_end_latency.push(&i.e2e);
        }
        let seconds = r.config.test_duration_seconds.max(1e-9);
        let t = m.totals;
        r.aggregated_publish_rate = t.published_msgs as f64 / seconds;
        r.aggregated_publish_mbps = t.published_bytes as f64 / 1e6 / seconds;
        r.aggregated_consume_rate = t.consumed_msgs as f64 / seconds;
        r.aggregated_consume_mbps = t.consumed_bytes as f64 / 1e6 / seconds;
        r.aggregated_publish_latency = percentiles(&t.publish);
        r.aggregated_end_to_end_latency = percentiles(&t.e2e);
        r.harness_wake_lateness = percentiles(&t.wake_lateness);
        r.publish_latency_quantiles = quantile_curve(&t.publish);
        r.end_to_end_latency_quantiles = quantile_curve(&t.e2e);
        r.errors = t.error_count();
        r.errors_by_kind = t.errors.clone();
        r.cpu = m.cpu;
        r.baseline = m.baseline;
        r.notes = m.notes;
        r.publish_histogram = histogram_to_hex(&t.publish);
        r.end_to_end_histogram = histogram_to_hex(&t.e2e);
        r.stability = stability(&m.windows, m.window_seconds);
        r.windows = m.windows;
        r.omb_windows = m.omb_windows;
        r.harness_wake_lateness_quantiles = quantile_curve(&t.wake_lateness);
        r
    }

    fn empty(config: RunConfig, started_at_unix_ms: i64) -> RunResult {
        RunResult {
            format_version: FORMAT_VERSION,
            tool: format!("riptide-bench {}", env!("CARGO_PKG_VERSION")),
            started_at_unix_ms,
            config,
            sample_seconds: 1.0,
            phase: Vec::new(),
            publish_rate: Vec::new(),
            publish_mbps: Vec::new(),
            consume_rate: Vec::new(),
            consume_mbps: Vec::new(),
            backlog: Vec::new(),
            producer_lag: Vec::new(),
            errors_per_sample: Vec::new(),
            publish_latency: LatencySeries::default(),
            end_to_end_latency: LatencySeries::default(),
            aggregated_publish_rate: 0.0,
            aggregated_publish_mbps: 0.0,
            aggregated_consume_rate: 0.0,
            aggregated_consume_mbps: 0.0,
            aggregated_publish_latency: Percentiles::default(),
            aggregated_end_to_end_latency: Percentiles::default(),
            harness_wake_lateness: Percentiles::default(),
            publish_latency_quantiles: Vec::new(),
            end_to_end_latency_quantiles: Vec::new(),
            errors: 0,
            errors_by_kind: BTreeMap::new(),
            cpu: CpuUse::default(),
            baseline: None,
            notes: Vec::new(),
            publish_histogram: String::new(),
            end_to_end_histogram: String::new(),
            windows: Vec::new(),
            stability: Stability::default(),
            omb_windows: Vec::new(),
            harness_wake_lateness_quantiles: Vec::new(),
            backlog_drain: None,
            segment_events: Vec::new(),
        }
    }

    /// The measured-window publish histogram (µs), decoded.
    pub fn publish_histogram(&self) -> Result<Histogram<u64>, String> {
        histogram_from_hex(&self.publish_histogram)
    }

    pub fn end_to_end_histogram(&self) -> Result<Histogram<u64>, String> {
        histogram_from_hex(&self.end_to_end_histogram)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::file(path, e))
    }

    pub fn load(path: &Path) -> Result<RunResult> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        let result: RunResult = serde_json::from_str(&text)
            .map_err(|e| Error::Results { path: path.to_path_buf(), reason: e.to_string() })?;
        if result.format_version != FORMAT_VERSION {
            let reason =
                format!("format version {} (this build reads {FORMAT_VERSION})", result.format_version);
            return Err(Error::Results { path: path.to_path_buf(), reason });
        }
        Ok(result)
    }
}

pub fn histogram_to_hex(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).expect("serializing to memory");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn histogram_from_hex(hex: &str) -> Result<Histogram<u64>, String> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return Err("histogram: not an even-length hex string".into());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|e| format!("histogram: {e}"))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| format!("histogram: {e:?}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::latency_histogram;

    fn uniform(n: u64) -> Histogram<u64> {
        let mut h = latency_histogram();
        for v in 1..=n {
            h.record(v).expect("in range");
        }
        h
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 1e-3 + 1e-9 // 3 significant digits
    }

    #[test]
    fn percentiles_of_known_inputs() {
        // 1..=10,000 µs, once each: the q-quantile is q·10 ms.
        let p = percentiles(&uniform(10_000));
        assert_eq!(p.count, 10_000);
        assert!(close(p.avg, 5.0005), "{p:?}");
        for (got, want) in [(p.p50, 5.0), (p.p75, 7.5), (p.p90, 9.0), (p.p95, 9.5), (p.p99, 9.9)] {
            assert!(close(got, want), "{got} vs {want}");
        }
        assert!(close(p.p999, 9.99) && close(p.p9999, 10.0) && close(p.max, 10.0), "{p:?}");
        // One outlier among 999 fast ones: p99.9 sees it, p99 does not.
        let mut h = latency_histogram();
        h.record_n(100, 999).expect("in range");
        h.record(50_000).expect("in range");
        let p = percentiles(&h);
        assert!(
            close(p.p99, 0.1) && close(p.p999, 0.1) && close(p.p9999, 50.0) && close(p.max, 50.0),
            "{p:?}"
        );
        assert!(close(p.avg, (999.0 * 100.0 + 50_000.0) / 1000.0 / 1e3));
        assert_eq!(percentiles(&latency_histogram()), Percentiles::default());
    }

    #[test]
    fn the_quantile_curve_climbs_in_nines() {
        let curve = quantile_curve(&uniform(100_000));
        assert_eq!(curve.len(), 50);
        assert_eq!(curve[0][0], 0.0);
        assert!(close(curve[8][0], 90.0) && close(curve[16][0], 99.0) && close(curve[48][0], 99.9999));
        assert!(close(curve[16][1], 99.0), "p99 of 1..100 ms is 99 ms: {:?}", curve[16]);
        assert!(curve.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]), "monotone");
        assert_eq!(curve[49], [100.0, percentiles(&uniform(100_000)).max]);
        assert!(quantile_curve(&latency_histogram()).is_empty());
    }

    pub(crate) fn config() -> RunConfig {
        RunConfig {
            workload: "w".into(),
            workload_file: "w.yaml".into(),
            target: "t".into(),
            driver: "riptide-client".into(),
            message_size: 100,
            topics: 1,
            partitions_per_topic: 2,
            producers_per_topic: 1,
            subscriptions_per_topic: 2,
            consumers_per_subscription: 1,
            consumer_assignment: "group".into(),
            target_rate: 1000.0,
            acks: "all".into(),
            compression: "none".into(),
            batch_size_bytes: 1 << 20,
            linger_ms: 1.0,
            key_distributor: "NO_KEY".into(),
            max_in_flight: 5,
            warmup_seconds: 1.0,
            test_duration_seconds: 2.0,
            harness_threads: 1,
        }
    }

    fn sample(phase: &'static str, published: u64, consumed: u64, latency_us: u64) -> Sample {
        let mut interval =
            Interval { published_msgs: published, published_bytes: published * 100, ..Interval::default() };
        interval.consumed_msgs = consumed;
        interval.consumed_bytes = consumed * 100;
        interval.publish.record_n(latency_us, published).expect("in range");
        Sample::of(phase, &interval)
    }

    /// A small known result: 3 s (1 warm-up), 1,000 msgs/s, 2 subscriptions, 3 errors.
    pub(crate) fn measured() -> RunResult {
        let samples = [
            sample("warmup", 1000, 1500, 300),
            sample("measure", 1000, 2000, 500),
            sample("measure", 1000, 2500, 700),
        ];
        let mut totals = Totals {
            published_msgs: 2000,
            published_bytes: 200_000,
            consumed_msgs: 4000,
            ..Totals::default()
        };
        totals.consumed_bytes = 400_000;
        totals.publish.record_n(500, 1000).expect("in range");
        totals.publish.record_n(700, 1000).expect("in range");
        totals.e2e.record_n(900, 4000).expect("in range");
        totals.errors.insert("REQUEST_TIMED_OUT".into(), 3);
        RunResult::from_measurement(Measurement {
            config: config(),
            started_at_unix_ms: 1,
            samples: &samples,
            totals: &totals,
            cpu: CpuUse {
                wall_seconds: 3.0,
                harness_cpu_seconds: 0.5,
                broker_cpu_seconds: Some(1.0),
                cores: 2,
                broker_peak_rss_bytes: None,
            },
            baseline: None,
            notes: vec!["n".into()],
            windows: Vec::new(),
            window_seconds: 60,
            omb_windows: Vec::new(),
        })
    }

    #[test]
    fn reports_compute_rates_backlog_and_percentiles() {
        let r = measured();
        assert_eq!(r.phase, vec!["warmup", "measure", "measure"]);
        assert_eq!(r.publish_rate, vec![1000.0; 3]);
        assert_eq!(r.publish_mbps, vec![0.1; 3]);
        // Two subscriptions: each published message is owed twice.
        assert_eq!(r.backlog, vec![500, 500, 0]);
        assert!(close(r.publish_latency.p50[1], 0.5) && close(r.publish_latency.p50[2], 0.7));
        assert_eq!((r.aggregated_publish_rate, r.aggregated_publish_mbps), (1000.0, 0.1));
        assert_eq!((r.aggregated_consume_rate, r.aggregated_consume_mbps), (2000.0, 0.2));
        assert!(close(r.aggregated_publish_latency.p50, 0.5) && close(r.aggregated_publish_latency.p99, 0.7));
        assert!(close(r.aggregated_end_to_end_latency.max, 0.9));
        assert_eq!((r.errors, r.errors_by_kind["REQUEST_TIMED_OUT"]), (3, 3));
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = measured();
        let dir = std::env::temp_dir().join(format!("rb-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("r.json");
        r.save(&path).expect("save");
        let back = RunResult::load(&path).expect("load");
        assert_eq!(back, r);
        let h = back.publish_histogram().expect("histogram");
        assert_eq!((h.len(), h.min(), h.max()), (2000, 500, 700));
        // OMB-style names are on the wire.
        let text = std::fs::read_to_string(&path).expect("read");
        for key in [
            "\"publishRate\"",
            "\"consumeRate\"",
            "\"backlog\"",
            "\"aggregatedPublishLatency\"",
            "\"p9999\"",
            "\"aggregatedEndToEndLatency\"",
            "\"publishMBps\"",
            "\"errorsByKind\"",
        ] {
            assert!(text.contains(key), "{key} missing");
        }
        std::fs::write(&path, "{\"formatVersion\": 1}").expect("write");
        assert!(matches!(RunResult::load(&path), Err(Error::Results { .. })));
        let _ = std::fs::remove_dir_all(dir);
        assert!(histogram_from_hex("zz").is_err() && histogram_from_hex("abc").is_err());
    }
}
