//! What one worker thread measures. Latencies go into HdrHistograms in microseconds (1 µs to
//! 1 hour, 3 significant digits); counters count messages and bytes. Two views are kept:
//! - the **interval** (one second, every message whatever its phase), which the worker hands to
//!   the main thread each second for the progress line and the time series;
//! - the **totals** of the measured window only: a message counts there when its *intended*
//!   send time falls after the warm-up and before the end, so a message held up during
//!   warm-up still counts in the warm-up, and the measured window's latencies are exactly
//!   those of the messages it asked for.
//!
//! Failures are counted by kind (the Kafka error name or the network failure) and carried to
//! the report; nothing is dropped silently.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub const LATENCY_US_MAX: u64 = 3_600_000_000;

pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds")
}

/// One thread's counters for one second.
#[derive(Debug, Clone)]
pub struct Interval {
    pub publish: Histogram<u64>,
    pub e2e: Histogram<u64>,
    pub published_msgs: u64,
    pub published_bytes: u64,
    pub consumed_msgs: u64,
    pub consumed_bytes: u64,
    pub errors: u64,
    /// Messages the producers were behind their schedule at the end of the second.
    pub behind_msgs: u64,
    /// How late producers woke against their plan in this second (OMB's "publish delay").
    pub wake_lateness: Histogram<u64>,
}

impl Default for Interval {
    fn default() -> Interval {
        Interval {
            publish: latency_histogram(),
            e2e: latency_histogram(),
            wake_lateness: latency_histogram(),
            published_msgs: 0,
            published_bytes: 0,
            consumed_msgs: 0,
            consumed_bytes: 0,
            errors: 0,
            behind_msgs: 0,
        }
    }
}

impl Interval {
    pub fn add(&mut self, other: &Interval) {
        self.publish.add(&other.publish).expect("same bounds");
        self.e2e.add(&other.e2e).expect("same bounds");
        self.wake_lateness.add(&other.wake_lateness).expect("same bounds");
        self.published_msgs += other.published_msgs;
        self.published_bytes += other.published_bytes;
        self.consumed_msgs += other.consumed_msgs;
        self.consumed_bytes += other.consumed_bytes;
        self.errors += other.errors;
        self.behind_msgs += other.behind_msgs;
    }
}

/// The measured window's totals on one thread (merged over threads at the end).
#[derive(Debug, Clone)]
pub struct Totals {
    pub publish: Histogram<u64>,
    pub e2e: Histogram<u64>,
    pub published_msgs: u64,
    pub published_bytes: u64,
    pub consumed_msgs: u64,
    pub consumed_bytes: u64,
    /// Every failure of the whole run (warm-up included), by kind: failed messages.
    pub errors: BTreeMap<String, u64>,
    /// How late producers woke up against their plan (µs, whole run): the harness's own delay
    /// (timer, scheduler, a busy thread), which shows whether it kept its schedule.
    pub wake_lateness: Histogram<u64>,
}

impl Default for Totals {
    fn default() -> Totals {
        Totals {
            publish: latency_histogram(),
            e2e: latency_histogram(),
            published_msgs: 0,
            published_bytes: 0,
            consumed_msgs: 0,
            consumed_bytes: 0,
            errors: BTreeMap::new(),
            wake_lateness: latency_histogram(),
        }
    }
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.publish.add(&other.publish).expect("same bounds");
        self.e2e.add(&other.e2e).expect("same bounds");
        self.published_msgs += other.published_msgs;
        self.published_bytes += other.published_bytes;
        self.consumed_msgs += other.consumed_msgs;
        self.consumed_bytes += other.consumed_bytes;
        self.wake_lateness.add(&other.wake_lateness).expect("same bounds");
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A worker thread's recorder (shared by its tasks through `Rc<RefCell<_>>`).
#[derive(Debug)]
pub struct Recorder {
    measure_from_ns: u64,
    measure_until_ns: u64,
    interval: Interval,
    totals: Totals,
    /// Per producer of this thread: how far behind schedule it last was.
    behind: Vec<u64>,
}

fn latency_us(from_ns: u64, to_ns: u64) -> u64 {
    (to_ns.saturating_sub(from_ns) / 1_000).max(1)
}

impl Recorder {
    /// Messages intended in `[measure_from_ns, measure_until_ns)` count in the totals.
    pub fn new(measure_from_ns: u64, measure_until_ns: u64, producers: usize) -> Recorder {
        assert!(measure_from_ns <= measure_until_ns);
        Recorder {
            measure_from_ns,
            measure_until_ns,
            interval: Interval::default(),
            totals: Totals::default(),
            behind: vec![0; producers],
        }
    }

    /// Fixes the measured window once the timeline is known (before any message is sent).
    pub fn set_window(&mut self, measure_from_ns: u64, measure_until_ns: u64) {
        assert!(measure_from_ns <= measure_until_ns);
        self.measure_from_ns = measure_from_ns;
        self.measure_until_ns = measure_until_ns;
    }

    fn measured(&self, intended_ns: u64) -> bool {
        (self.measure_from_ns..self.measure_until_ns).contains(&intended_ns)
    }

    /// A batch was acknowledged at `ack_ns`; `intended_ns` are its messages' intended times.
    /// Neighbours in a batch were intended nanoseconds apart, so most share their latency in
    /// µs: equal runs are recorded with one histogram update (a third of the harness's CPU at
    /// millions of messages per second went to per-message updates).
    pub fn published(&mut self, intended_ns: &[u64], ack_ns: u64, message_bytes: u64) {
        let mut run: Option<(u64, bool, u64)> = None;
        for &t in intended_ns {
            let (us, measured) = (latency_us(t, ack_ns), self.measured(t));
            match run.as_mut() {
                Some((u, m, count)) if *u == us && *m == measured => *count += 1,
                _ => {
                    if let Some(done) = run.replace((us, measured, 1)) {
                        self.published_run(done, message_bytes);
                    }
                }
            }
        }
        if let Some(done) = run {
            self.published_run(done, message_bytes);
        }
        let n = intended_ns.len() as u64;
        self.interval.published_msgs += n;
        self.interval.published_bytes += n * message_bytes;
    }

    fn published_run(&mut self, (us, measured, count): (u64, bool, u64), message_bytes: u64) {
        self.interval.publish.saturating_record_n(us, count);
        if measured {
            self.totals.publish.saturating_record_n(us, count);
            self.totals.published_msgs += count;
            self.totals.published_bytes += count * message_bytes;
        }
    }

    /// `messages` failed with `kind` (never acknowledged).
    pub fn failed(&mut self, messages: u64, kind: &str) {
        self.interval.errors += messages;
        *self.totals.errors.entry(kind.to_string()).or_default() += messages;
    }

    /// A message intended at `intended_ns` reached a consumer at `now_ns`.
    pub fn consumed(&mut self, intended_ns: u64, now_ns: u64, message_bytes: u64) {
        let us = latency_us(intended_ns, now_ns);
        self.interval.e2e.saturating_record(us);
        self.interval.consumed_msgs += 1;
        self.interval.consumed_bytes += message_bytes;
        if self.measured(intended_ns) {
            self.totals.e2e.saturating_record(us);
            self.totals.consumed_msgs += 1;
            self.totals.consumed_bytes += message_bytes;
        }
    }

    /// A producer meant to wake at `planned_ns` and woke at `now_ns`.
    pub fn woke(&mut self, planned_ns: u64, now_ns: u64) {
        let us = latency_us(planned_ns, now_ns);
        self.interval.wake_lateness.saturating_record(us);
        self.totals.wake_lateness.saturating_record(us);
    }

    /// Producer `index` of this thread is `msgs` behind its schedule.
    pub fn behind(&mut self, index: usize, msgs: u64) {
        self.behind[index] = msgs;
    }

    /// The second just ended; counting starts afresh.
    pub fn take_interval(&mut self) -> Interval {
        let mut done = std::mem::take(&mut self.interval);
        done.behind_msgs = self.behind.iter().sum();
        done
    }

    pub fn into_totals(self) -> Totals {
        self.totals
    }
}

/// Latency summary in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub avg: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    /// Absent in results written before it (OMB reports it).
    #[serde(default)]
    pub p99999: f64,
    pub max: f64,
}

/// Percentiles of a histogram of microseconds, in ms (all zero when it is empty).
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1e3;
    let q = |quantile: f64| ms(h.value_at_quantile(quantile));
    Percentiles {
        count: h.len(),
        avg: h.mean() / 1e3,
        p50: q(0.50),
        p75: q(0.75),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        p99999: q(0.99999),
        max: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_the_intended_time_and_only_measured_messages_total() {
        let mut r = Recorder::new(1_000_000, 2_000_000, 1);
        // Three messages intended at 0.5, 1.0 and 1.5 ms, all acknowledged at 3 ms.
        r.published(&[500_000, 1_000_000, 1_500_000], 3_000_000, 100);
        r.consumed(1_500_000, 4_000_000, 100);
        r.failed(7, "NOT_LEADER_OR_FOLLOWER");
        r.behind(0, 12);
        let i = r.take_interval();
        assert_eq!((i.published_msgs, i.published_bytes, i.errors, i.behind_msgs), (3, 300, 7, 12));
        assert_eq!(i.publish.len(), 3);
        assert!(i.publish.equivalent(i.publish.max(), 2_500), "the warm-up message is in the interval");
        assert_eq!(r.take_interval().published_msgs, 0, "the interval starts afresh");
        let t = r.into_totals();
        assert_eq!((t.published_msgs, t.published_bytes), (2, 200), "0.5 ms is warm-up");
        assert!(t.publish.equivalent(t.publish.min(), 1_500) && t.publish.equivalent(t.publish.max(), 2_000));
        assert!(t.consumed_msgs == 1 && t.e2e.equivalent(t.e2e.max(), 2_500));
        assert_eq!(t.error_count(), 7);
    }

    #[test]
    fn runs_of_equal_latency_count_every_message() {
        let mut r = Recorder::new(1_000, 10_000_000, 0);
        // 10 messages 100 ns apart straddling the window start (1,000 ns), acked at 2.001 ms:
        // 2000 µs for the one intended at 1,000 ns, 1999 µs for the next four in the window.
        let intended: Vec<u64> = (0..10).map(|i| 100 * i + 500).collect();
        r.published(&intended, 2_001_000, 10);
        let i = r.take_interval();
        assert_eq!((i.publish.len(), i.published_msgs, i.published_bytes), (10, 10, 100));
        let t = r.into_totals();
        assert_eq!((t.publish.len(), t.published_msgs, t.published_bytes), (5, 5, 50));
        assert_eq!((t.publish.count_at(2000), t.publish.count_at(1999)), (1, 4));
    }

    #[test]
    fn totals_and_intervals_merge() {
        let mut a = Recorder::new(0, u64::MAX, 0);
        let mut b = Recorder::new(0, u64::MAX, 0);
        a.published(&[0], 10_000, 1);
        b.published(&[0], 30_000, 1);
        b.failed(1, "x");
        let mut i = a.take_interval();
        i.add(&b.take_interval());
        assert_eq!((i.published_msgs, i.publish.len(), i.errors), (2, 2, 1));
        let mut t = a.into_totals();
        t.add(&b.into_totals());
        assert_eq!((t.publish.min(), t.publish.max(), t.error_count()), (10, 30, 1));
        // Latencies below 1 µs count as 1 µs; beyond an hour they saturate.
        let mut r = Recorder::new(0, u64::MAX, 0);
        r.published(&[5], 5, 1);
        r.published(&[0], u64::MAX / 2, 1);
        let t = r.into_totals();
        assert_eq!(t.publish.min(), 1);
        assert!(t.publish.max() >= LATENCY_US_MAX);
    }
}
