//! The result in the OpenMessaging Benchmark's own JSON (`TestResult.java`, field for
//! field), so OMB's charting script (`bin/create_charts.py`) and anything else built on its
//! files reads our runs beside OMB's. Latencies in ms; the per-interval lists have one entry
//! per 10 s of the measured phase (OMB's stats interval; OMB discards its warm-up too). OMB's
//! "publish delay" (how late a send was against its schedule, µs) is the harness's wake
//! lateness: how late a producer woke against its plan.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::collect::OMB_STATS_SECONDS;
use crate::report::{LatencySeries, Percentiles, RunResult};
use crate::windows::WindowStats;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OmbResult {
    pub workload: String,
    pub driver: String,
    pub message_size: u64,
    pub topics: u32,
    pub partitions: u32,
    pub producers_per_topic: u32,
    /// OMB writes `consumerPerSubscription` here.
    pub consumers_per_topic: u32,

    pub publish_rate: Vec<f64>,
    pub publish_error_rate: Vec<f64>,
    pub consume_rate: Vec<f64>,
    pub backlog: Vec<i64>,

    pub publish_latency_avg: Vec<f64>,
    #[serde(rename = "publishLatency50pct")]
    pub publish_latency_50pct: Vec<f64>,
    #[serde(rename = "publishLatency75pct")]
    pub publish_latency_75pct: Vec<f64>,
    #[serde(rename = "publishLatency95pct")]
    pub publish_latency_95pct: Vec<f64>,
    #[serde(rename = "publishLatency99pct")]
    pub publish_latency_99pct: Vec<f64>,
    #[serde(rename = "publishLatency999pct")]
    pub publish_latency_999pct: Vec<f64>,
    #[serde(rename = "publishLatency9999pct")]
    pub publish_latency_9999pct: Vec<f64>,
    #[serde(rename = "publishLatency99999pct")]
    pub publish_latency_99999pct: Vec<f64>,
    pub publish_latency_max: Vec<f64>,

    pub publish_delay_latency_avg: Vec<f64>,
    #[serde(rename = "publishDelayLatency50pct")]
    pub publish_delay_latency_50pct: Vec<u64>,
    #[serde(rename = "publishDelayLatency75pct")]
    pub publish_delay_latency_75pct: Vec<u64>,
    #[serde(rename = "publishDelayLatency95pct")]
    pub publish_delay_latency_95pct: Vec<u64>,
    #[serde(rename = "publishDelayLatency99pct")]
    pub publish_delay_latency_99pct: Vec<u64>,
    #[serde(rename = "publishDelayLatency999pct")]
    pub publish_delay_latency_999pct: Vec<u64>,
    #[serde(rename = "publishDelayLatency9999pct")]
    pub publish_delay_latency_9999pct: Vec<u64>,
    #[serde(rename = "publishDelayLatency99999pct")]
    pub publish_delay_latency_99999pct: Vec<u64>,
    pub publish_delay_latency_max: Vec<u64>,

    pub aggregated_publish_latency_avg: f64,
    #[serde(rename = "aggregatedPublishLatency50pct")]
    pub aggregated_publish_latency_50pct: f64,
    #[serde(rename = "aggregatedPublishLatency75pct")]
    pub aggregated_publish_latency_75pct: f64,
    #[serde(rename = "aggregatedPublishLatency95pct")]
    pub aggregated_publish_latency_95pct: f64,
    #[serde(rename = "aggregatedPublishLatency99pct")]
    pub aggregated_publish_latency_99pct: f64,
    #[serde(rename = "aggregatedPublishLatency999pct")]
    pub aggregated_publish_latency_999pct: f64,
    #[serde(rename = "aggregatedPublishLatency9999pct")]
    pub aggregated_publish_latency_9999pct: f64,
    #[serde(rename = "aggregatedPublishLatency99999pct")]
    pub aggregated_publish_latency_99999pct: f64,
    pub aggregated_publish_latency_max: f64,

    pub aggregated_publish_delay_latency_avg: f64,
    #[serde(rename = "aggregatedPublishDelayLatency50pct")]
    pub aggregated_publish_delay_latency_50pct: u64,
    #[serde(rename = "aggregatedPublishDelayLatency75pct")]
    pub aggregated_publish_delay_latency_75pct: u64,
    #[serde(rename = "aggregatedPublishDelayLatency95pct")]
    pub aggregated_publish_delay_latency_95pct: u64,
    #[serde(rename = "aggregatedPublishDelayLatency99pct")]
    pub aggregated_publish_delay_latency_99pct: u64,
    #[serde(rename = "aggregatedPublishDelayLatency999pct")]
    pub aggregated_publish_delay_latency_999pct: u64,
    #[serde(rename = "aggregatedPublishDelayLatency9999pct")]
    pub aggregated_publish_delay_latency_9999pct: u64,
    #[serde(rename = "aggregatedPublishDelayLatency99999pct")]
    pub aggregated_publish_delay_latency_99999pct: u64,
    pub aggregated_publish_delay_latency_max: u64,

    /// Percentile (as Java prints a double: `99.0`) → ms.
    pub aggregated_publish_latency_quantiles: BTreeMap<String, f64>,
    pub aggregated_publish_delay_latency_quantiles: BTreeMap<String, u64>,

    pub end_to_end_latency_avg: Vec<f64>,
    #[serde(rename = "endToEndLatency50pct")]
    pub end_to_end_latency_50pct: Vec<f64>,
    #[serde(rename = "endToEndLatency75pct")]
    pub end_to_end_latency_75pct: Vec<f64>,
    #[serde(rename = "endToEndLatency95pct")]
    pub end_to_end_latency_95pct: Vec<f64>,
    #[serde(rename = "endToEndLatency99pct")]
    pub end_to_end_latency_99pct: Vec<f64>,
    #[serde(rename = "endToEndLatency999pct")]
    pub end_to_end_latency_999pct: Vec<f64>,
    #[serde(rename = "endToEndLatency9999pct")]
    pub end_to_end_latency_9999pct: Vec<f64>,
    #[serde(rename = "endToEndLatency99999pct")]
    pub end_to_end_latency_99999pct: Vec<f64>,
    pub end_to_end_latency_max: Vec<f64>,

    pub aggregated_end_to_end_latency_quantiles: BTreeMap<String, f64>,

    pub aggregated_end_to_end_latency_avg: f64,
    #[serde(rename = "aggregatedEndToEndLatency50pct")]
    pub aggregated_end_to_end_latency_50pct: f64,
    #[serde(rename = "aggregatedEndToEndLatency75pct")]
    pub aggregated_end_to_end_latency_75pct: f64,
    #[serde(rename = "aggregatedEndToEndLatency95pct")]
    pub aggregated_end_to_end_latency_95pct: f64,
    #[serde(rename = "aggregatedEndToEndLatency99pct")]
    pub aggregated_end_to_end_latency_99pct: f64,
    #[serde(rename = "aggregatedEndToEndLatency999pct")]
    pub aggregated_end_to_end_latency_999pct: f64,
    #[serde(rename = "aggregatedEndToEndLatency9999pct")]
    pub aggregated_end_to_end_latency_9999pct: f64,
    #[serde(rename = "aggregatedEndToEndLatency99999pct")]
    pub aggregated_end_to_end_latency_99999pct: f64,
    pub aggregated_end_to_end_latency_max: f64,
}

/// Java's `Double.toString` for the percentiles we emit (`50.0`, `99.9`, `99.99999`).
fn java_double(v: f64) -> String {
    let text = format!("{v}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}

fn quantiles(curve: &[[f64; 2]]) -> BTreeMap<String, f64> {
    // Rounded to 6 decimals so that 99.9 prints as 99.9, not 99.90000000000001.
    curve.iter().map(|[q, ms]| (java_double((q * 1e6).round() / 1e6), *ms)).collect()
}

fn us(ms: f64) -> u64 {
    (ms * 1e3).round() as u64
}

/// OMB's per-interval series.
#[derive(Default)]
struct Intervals {
    publish_rate: Vec<f64>,
    publish_error_rate: Vec<f64>,
    consume_rate: Vec<f64>,
    backlog: Vec<i64>,
    publish: Vec<Percentiles>,
    e2e: Vec<Percentiles>,
    delay: Vec<Percentiles>,
}

impl Intervals {
    /// From the 10-second windows of the measured phase (OMB's stats interval, so its
    /// charting script's time axis is right), or, for results written before those and runs
    /// shorter than one window, from the measured seconds (publish delay then unknown: 0).
    fn of(r: &RunResult) -> Intervals {
        let mut out = Intervals::default();
        let windows: Vec<&WindowStats> =
            r.omb_windows.iter().filter(|w| w.phase == "measure" && w.seconds == OMB_STATS_SECONDS).collect();
        if !windows.is_empty() {
            for w in windows {
                let per_s = |n: u64| n as f64 / w.seconds as f64;
                out.publish_rate.push(per_s(w.published_msgs));
                out.publish_error_rate.push(per_s(w.errors));
                out.consume_rate.push(per_s(w.consumed_msgs));
                out.backlog.push(r.backlog.get(w.end_second as usize - 1).copied().unwrap_or(0));
                out.publish.push(w.publish_latency);
                out.e2e.push(w.end_to_end_latency);
                out.delay.push(w.publish_delay);
            }
            return out;
        }
        for i in (0..r.phase.len()).filter(|i| r.phase[*i] == "measure") {
            let at = |v: &[f64]| v.get(i).copied().unwrap_or(0.0);
            out.publish_rate.push(at(&r.publish_rate));
            out.publish_error_rate.push(r.errors_per_sample.get(i).map_or(0.0, |e| *e as f64));
            out.consume_rate.push(at(&r.consume_rate));
            out.backlog.push(r.backlog.get(i).copied().unwrap_or(0));
            out.publish.push(second(&r.publish_latency, i));
            out.e2e.push(second(&r.end_to_end_latency, i));
            out.delay.push(Percentiles::default());
        }
        out
    }
}

/// Second `i` of a per-second series as percentiles (series missing in old files read 0).
fn second(s: &LatencySeries, i: usize) -> Percentiles {
    let at = |v: &[f64]| v.get(i).copied().unwrap_or(0.0);
    Percentiles {
        count: 0,
        avg: at(&s.avg),
        p50: at(&s.p50),
        p75: at(&s.p75),
        p90: 0.0,
        p95: at(&s.p95),
        p99: at(&s.p99),
        p999: at(&s.p999),
        p9999: at(&s.p9999),
        p99999: at(&s.p99999),
        max: at(&s.max),
    }
}

fn ms_series(v: &[Percentiles], f: fn(&Percentiles) -> f64) -> Vec<f64> {
    v.iter().map(f).collect()
}

fn us_series(v: &[Percentiles], f: fn(&Percentiles) -> f64) -> Vec<u64> {
    v.iter().map(|p| us(f(p))).collect()
}

impl OmbResult {
    pub fn from_run(r: &RunResult) -> OmbResult {
        let c = &r.config;
        let s = Intervals::of(r);
        let (p, e, d) = (&s.publish, &s.e2e, &s.delay);
        let ap = &r.aggregated_publish_latency;
        let ae = &r.aggregated_end_to_end_latency;
        let ad = &r.harness_wake_lateness;
        OmbResult {
            workload: c.workload.clone(),
            driver: format!("{} ({})", c.driver, c.target),
            message_size: u64::from(c.message_size),
            topics: c.topics,
            partitions: c.partitions_per_topic,
            producers_per_topic: c.producers_per_topic,
            consumers_per_topic: c.consumers_per_subscription,
            publish_rate: s.publish_rate.clone(),
            publish_error_rate: s.publish_error_rate.clone(),
            consume_rate: s.consume_rate.clone(),
            backlog: s.backlog.clone(),
            publish_latency_avg: ms_series(p, |p| p.avg),
            publish_latency_50pct: ms_series(p, |p| p.p50),
            publish_latency_75pct: ms_series(p, |p| p.p75),
            publish_latency_95pct: ms_series(p, |p| p.p95),
            publish_latency_99pct: ms_series(p, |p| p.p99),
            publish_latency_999pct: ms_series(p, |p| p.p999),
            publish_latency_9999pct: ms_series(p, |p| p.p9999),
            publish_latency_99999pct: ms_series(p, |p| p.p99999),
            publish_latency_max: ms_series(p, |p| p.max),
            publish_delay_latency_avg: d.iter().map(|p| p.avg * 1e3).collect(),
            publish_delay_latency_50pct: us_series(d, |p| p.p50),
            publish_delay_latency_75pct: us_series(d, |p| p.p75),
            publish_delay_latency_95pct: us_series(d, |p| p.p95),
            publish_delay_latency_99pct: us_series(d, |p| p.p99),
            publish_delay_latency_999pct: us_series(d, |p| p.p999),
            publish_delay_latency_9999pct: us_series(d, |p| p.p9999),
            publish_delay_latency_99999pct: us_series(d, |p| p.p99999),
            publish_delay_latency_max: us_series(d, |p| p.max),
            aggregated_publish_latency_avg: ap.avg,
            aggregated_publish_latency_50pct: ap.p50,
            aggregated_publish_latency_75pct: ap.p75,
            aggregated_publish_latency_95pct: ap.p95,
            aggregated_publish_latency_99pct: ap.p99,
            aggregated_publish_latency_999pct: ap.p999,
            aggregated_publish_latency_9999pct: ap.p9999,
            aggregated_publish_latency_99999pct: ap.p99999,
            aggregated_publish_latency_max: ap.max,
            aggregated_publish_delay_latency_avg: ad.avg * 1e3,
            aggregated_publish_delay_latency_50pct: us(ad.p50),
            aggregated_publish_delay_latency_75pct: us(ad.p75),
            aggregated_publish_delay_latency_95pct: us(ad.p95),
            aggregated_publish_delay_latency_99pct: us(ad.p99),
            aggregated_publish_delay_latency_999pct: us(ad.p999),
            aggregated_publish_delay_latency_9999pct: us(ad.p9999),
            aggregated_publish_delay_latency_99999pct: us(ad.p99999),
            aggregated_publish_delay_latency_max: us(ad.max),
            aggregated_publish_latency_quantiles: quantiles(&r.publish_latency_quantiles),
            aggregated_publish_delay_latency_quantiles: quantiles(&r.harness_wake_lateness_quantiles)
                .into_iter()
                .map(|(q, ms)| (q, us(ms)))
                .collect(),
            end_to_end_latency_avg: ms_series(e, |p| p.avg),
            end_to_end_latency_50pct: ms_series(e, |p| p.p50),
            end_to_end_latency_75pct: ms_series(e, |p| p.p75),
            end_to_end_latency_95pct: ms_series(e, |p| p.p95),
            end_to_end_latency_99pct: ms_series(e, |p| p.p99),
            end_to_end_latency_999pct: ms_series(e, |p| p.p999),
            end_to_end_latency_9999pct: ms_series(e, |p| p.p9999),
            end_to_end_latency_99999pct: ms_series(e, |p| p.p99999),
            end_to_end_latency_max: ms_series(e, |p| p.max),
            aggregated_end_to_end_latency_quantiles: quantiles(&r.end_to_end_latency_quantiles),
            aggregated_end_to_end_latency_avg: ae.avg,
            aggregated_end_to_end_latency_50pct: ae.p50,
            aggregated_end_to_end_latency_75pct: ae.p75,
            aggregated_end_to_end_latency_95pct: ae.p95,
            aggregated_end_to_end_latency_99pct: ae.p99,
            aggregated_end_to_end_latency_999pct: ae.p999,
            aggregated_end_to_end_latency_9999pct: ae.p9999,
            aggregated_end_to_end_latency_99999pct: ae.p99999,
            aggregated_end_to_end_latency_max: ae.max,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::measured;

    /// Every field of OMB's TestResult.java (its master branch).
    const TEST_RESULT_FIELDS: &[&str] = &[
        "workload",
        "driver",
        "messageSize",
        "topics",
        "partitions",
        "producersPerTopic",
        "consumersPerTopic",
        "publishRate",
        "publishErrorRate",
        "consumeRate",
        "backlog",
        "publishLatencyAvg",
        "publishLatency50pct",
        "publishLatency75pct",
        "publishLatency95pct",
        "publishLatency99pct",
        "publishLatency999pct",
        "publishLatency9999pct",
        "publishLatency99999pct",
        "publishLatencyMax",
        "publishDelayLatencyAvg",
        "publishDelayLatency50pct",
        "publishDelayLatency75pct",
        "publishDelayLatency95pct",
        "publishDelayLatency99pct",
        "publishDelayLatency999pct",
        "publishDelayLatency9999pct",
        "publishDelayLatency99999pct",
        "publishDelayLatencyMax",
        "aggregatedPublishLatencyAvg",
        "aggregatedPublishLatency50pct",
        "aggregatedPublishLatency75pct",
        "aggregatedPublishLatency95pct",
        "aggregatedPublishLatency99pct",
        "aggregatedPublishLatency999pct",
        "aggregatedPublishLatency9999pct",
        "aggregatedPublishLatency99999pct",
        "aggregatedPublishLatencyMax",
        "aggregatedPublishDelayLatencyAvg",
        "aggregatedPublishDelayLatency50pct",
        "aggregatedPublishDelayLatency75pct",
        "aggregatedPublishDelayLatency95pct",
        "aggregatedPublishDelayLatency99pct",
        "aggregatedPublishDelayLatency999pct",
        "aggregatedPublishDelayLatency9999pct",
        "aggregatedPublishDelayLatency99999pct",
        "aggregatedPublishDelayLatencyMax",
        "aggregatedPublishLatencyQuantiles",
        "aggregatedPublishDelayLatencyQuantiles",
        "endToEndLatencyAvg",
        "endToEndLatency50pct",
        "endToEndLatency75pct",
        "endToEndLatency95pct",
        "endToEndLatency99pct",
        "endToEndLatency999pct",
        "endToEndLatency9999pct",
        "endToEndLatency99999pct",
        "endToEndLatencyMax",
        "aggregatedEndToEndLatencyQuantiles",
        "aggregatedEndToEndLatencyAvg",
        "aggregatedEndToEndLatency50pct",
        "aggregatedEndToEndLatency75pct",
        "aggregatedEndToEndLatency95pct",
        "aggregatedEndToEndLatency99pct",
        "aggregatedEndToEndLatency999pct",
        "aggregatedEndToEndLatency9999pct",
        "aggregatedEndToEndLatency99999pct",
        "aggregatedEndToEndLatencyMax",
    ];

    #[test]
    fn the_omb_file_has_exactly_omb_s_fields_and_the_measured_seconds() {
        let r = measured();
        let json: serde_json::Value = serde_json::from_str(&OmbResult::from_run(&r).to_json()).expect("json");
        let object = json.as_object().expect("object");
        let mut ours: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut theirs = TEST_RESULT_FIELDS.to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
        // Two measured seconds of three (the first was warm-up).
        assert_eq!(json["publishRate"], serde_json::json!([1000.0, 1000.0]));
        assert_eq!(json["backlog"], serde_json::json!([500, 0]));
        assert_eq!(json["consumersPerTopic"], 1);
        assert_eq!(json["partitions"], 2);
        let p99 = json["aggregatedPublishLatency99pct"].as_f64().expect("number");
        assert!((p99 - 0.7).abs() < 1e-3, "{p99}");
        let quantiles = json["aggregatedPublishLatencyQuantiles"].as_object().expect("map");
        assert!(quantiles.contains_key("50.0") || quantiles.contains_key("0.0"), "{quantiles:?}");
        assert!(quantiles.contains_key("99.0") && quantiles.contains_key("100.0"), "{quantiles:?}");
    }

    #[test]
    fn ten_second_windows_become_omb_s_intervals() {
        let mut r = measured();
        let window = |end_second, phase: &str, published| WindowStats {
            end_second,
            seconds: OMB_STATS_SECONDS,
            phase: phase.into(),
            published_msgs: published,
            consumed_msgs: 2 * published,
            publish_latency: Percentiles { p99: 2.5, ..Percentiles::default() },
            end_to_end_latency: Percentiles::default(),
            errors: 30,
            publish_delay: Percentiles { p99: 0.125, ..Percentiles::default() },
        };
        r.omb_windows = vec![window(10, "warmup", 1), window(20, "measure", 50_000), window(25, "drain", 1)];
        r.backlog = (0..25).collect();
        let json: serde_json::Value = serde_json::from_str(&OmbResult::from_run(&r).to_json()).expect("json");
        assert_eq!(json["publishRate"], serde_json::json!([5000.0]), "the one measured window, per second");
        assert_eq!(json["consumeRate"], serde_json::json!([10000.0]));
        assert_eq!(json["publishErrorRate"], serde_json::json!([3.0]));
        assert_eq!(json["backlog"], serde_json::json!([19]), "the backlog at the window's end");
        assert_eq!(json["publishLatency99pct"], serde_json::json!([2.5]));
        assert_eq!(json["publishDelayLatency99pct"], serde_json::json!([125]), "µs, as OMB");
    }

    #[test]
    fn percentiles_print_as_java_doubles() {
        assert_eq!(java_double(50.0), "50.0");
        assert_eq!(java_double(99.9), "99.9");
        assert_eq!(java_double(99.99999), "99.99999");
    }
}
