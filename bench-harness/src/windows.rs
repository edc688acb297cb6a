//! Soak statistics: latency percentiles per window (a minute by default) and the run's
//! stability figure. A long run cannot keep every second's histograms (each is a few hundred
//! KB; an hour of them would be gigabytes), so the runner folds each second into the open
//! window's histograms and keeps only the window's percentiles when it closes.
//!
//! The stability figure answers "did the tail drift or spike over the run": for each window
//! of the measured phase, its p99 against the median of all those windows' p99s, and the same
//! for p99.9; the figure is the largest of these ratios (1.0: every window alike; 3.0: some
//! window's tail was three times the usual). Long soaks of Kafka-compatible brokers have
//! shown p99 climbing from milliseconds to seconds over hours while the whole-run percentiles
//! looked fine; this figure is the number that shows it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{latency_histogram, percentiles, Interval, Percentiles};

/// One closed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowStats {
    /// Seconds since the start at the window's end.
    pub end_second: u64,
    pub seconds: u64,
    /// `measure` when every second of it was measured, else the first other phase in it
    /// (`warmup` or `drain`).
    pub phase: String,
    pub published_msgs: u64,
    pub consumed_msgs: u64,
    pub publish_latency: Percentiles,
    pub end_to_end_latency: Percentiles,
    /// Failed messages, and how late producers woke (OMB's publish delay); absent in results
    /// written before them.
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub publish_delay: Percentiles,
}

/// Folds seconds into windows of `window_seconds`.
pub struct Windows {
    window_seconds: u64,
    publish: Histogram<u64>,
    e2e: Histogram<u64>,
    wake: Histogram<u64>,
    published_msgs: u64,
    consumed_msgs: u64,
    errors: u64,
    seconds: u64,
    /// The first second's phase that was not `measure`.
    other_phase: Option<&'static str>,
    last_second: u64,
    closed: Vec<WindowStats>,
}

impl Windows {
    pub fn new(window_seconds: u64) -> Windows {
        assert!(window_seconds > 0);
        Windows {
            window_seconds,
            publish: latency_histogram(),
            e2e: latency_histogram(),
            wake: latency_histogram(),
            published_msgs: 0,
            consumed_msgs: 0,
            errors: 0,
            seconds: 0,
            other_phase: None,
            last_second: 0,
            closed: Vec::new(),
        }
    }

    /// Second `second` (1-based, in order) of phase `phase` ended with `interval`.
    pub fn add(&mut self, second: u64, phase: &'static str, interval: &Interval) {
        self.publish.add(&interval.publish).expect("same bounds");
        self.e2e.add(&interval.e2e).expect("same bounds");
        self.wake.add(&interval.wake_lateness).expect("same bounds");
        self.published_msgs += interval.published_msgs;
        self.consumed_msgs += interval.consumed_msgs;
        self.errors += interval.errors;
        self.seconds += 1;
        if phase != "measure" {
            self.other_phase.get_or_insert(phase);
        }
        self.last_second = second;
        if self.seconds == self.window_seconds {
            self.close();
        }
    }

    fn close(&mut self) {
        if self.seconds == 0 {
            return;
        }
        self.closed.push(WindowStats {
            end_second: self.last_second,
            seconds: self.seconds,
            phase: self.other_phase.unwrap_or("measure").to_string(),
            published_msgs: self.published_msgs,
            consumed_msgs: self.consumed_msgs,
            publish_latency: percentiles(&self.publish),
            end_to_end_latency: percentiles(&self.e2e),
            errors: self.errors,
            publish_delay: percentiles(&self.wake),
        });
        self.publish.reset();
        self.e2e.reset();
        self.wake.reset();
        (self.published_msgs, self.consumed_msgs, self.errors, self.seconds, self.other_phase) =
            (0, 0, 0, 0, None);
    }

    /// The windows, the last one possibly shorter.
    pub fn finish(mut self) -> Vec<WindowStats> {
        self.close();
        self.closed
    }
}

/// The stability figure of one latency (publish or end-to-end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StabilityFigure {
    /// Measured windows compared.
    pub windows: usize,
    pub p99_median_ms: f64,
    pub p999_median_ms: f64,
    /// The largest window percentile over its median (p99 or p99.9, whichever is larger).
    pub worst_ratio: f64,
    /// Where: the window's end second and which percentile.
    pub worst_end_second: u64,
    pub worst_percentile: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stability {
    pub window_seconds: u64,
    pub publish: Option<StabilityFigure>,
    pub end_to_end: Option<StabilityFigure>,
}

/// The stability figures over the fully measured windows (at least two with messages;
/// a shorter last window is left out, its percentiles rest on fewer messages).
pub fn stability(windows: &[WindowStats], window_seconds: u64) -> Stability {
    let measured: Vec<&WindowStats> =
        windows.iter().filter(|w| w.phase == "measure" && w.seconds == window_seconds).collect();
    Stability {
        window_seconds,
        publish: figure(&measured, |w| &w.publish_latency),
        end_to_end: figure(&measured, |w| &w.end_to_end_latency),
    }
}

fn figure(windows: &[&WindowStats], pick: fn(&WindowStats) -> &Percentiles) -> Option<StabilityFigure> {
    let with_data: Vec<&WindowStats> = windows.iter().copied().filter(|w| pick(w).count > 0).collect();
    if with_data.len() < 2 {
        return None;
    }
    let p99_median = median(with_data.iter().map(|w| pick(w).p99).collect());
    let p999_median = median(with_data.iter().map(|w| pick(w).p999).collect());
    let ratio = |v: f64, m: f64| if m > 0.0 { v / m } else { 1.0 };
    let mut worst = (0.0, 0, "p99");
    for w in &with_data {
        let p = pick(w);
        for (r, name) in [(ratio(p.p99, p99_median), "p99"), (ratio(p.p999, p999_median), "p99.9")] {
            if r > worst.0 {
                worst = (r, w.end_second, name);
            }
        }
    }
    Some(StabilityFigure {
        windows: with_data.len(),
        p99_median_ms: p99_median,
        p999_median_ms: p999_median,
        worst_ratio: worst.0,
        worst_end_second: worst.1,
        worst_percentile: worst.2.to_string(),
    })
}

/// The median (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(latency_us: u64, tail_us: u64) -> Interval {
        let mut i = Interval { published_msgs: 1000, ..Interval::default() };
        i.publish.record_n(latency_us, 990).expect("in range");
        i.publish.record_n(tail_us, 10).expect("in range");
        i
    }

    #[test]
    fn seconds_fold_into_windows_with_their_phase() {
        let mut w = Windows::new(3);
        let phases = ["warmup", "measure", "measure", "measure", "measure", "measure", "measure", "drain"];
        for (k, phase) in phases.iter().enumerate() {
            w.add(k as u64 + 1, phase, &second(1_000, 2_000));
        }
        let closed = w.finish();
        let shape: Vec<(u64, u64, &str)> =
            closed.iter().map(|c| (c.end_second, c.seconds, c.phase.as_str())).collect();
        assert_eq!(shape, vec![(3, 3, "warmup"), (6, 3, "measure"), (8, 2, "drain")]);
        // The first window began in warm-up: it is not a measured window.
        assert_eq!(closed[0].published_msgs, 3000);
        assert_eq!(closed[0].publish_latency.count, 3000);
    }

    fn window(end_second: u64, p99: f64, p999: f64) -> WindowStats {
        let p = Percentiles { count: 1000, p99, p999, ..Percentiles::default() };
        WindowStats {
            end_second,
            seconds: 60,
            phase: "measure".into(),
            published_msgs: 1000,
            consumed_msgs: 0,
            publish_latency: p,
            end_to_end_latency: Percentiles::default(),
            errors: 0,
            publish_delay: Percentiles::default(),
        }
    }

    #[test]
    fn a_steady_run_scores_one_and_a_spike_scores_its_height() {
        let steady: Vec<WindowStats> = (1..=10).map(|m| window(60 * m, 2.0, 5.0)).collect();
        let s = stability(&steady, 60);
        let f = s.publish.expect("ten windows");
        assert_eq!((f.windows, f.p99_median_ms, f.p999_median_ms, f.worst_ratio), (10, 2.0, 5.0, 1.0));
        assert!(s.end_to_end.is_none(), "no consumers, no end-to-end figure");
        // Minute 7's p99.9 spikes to 40 ms (8x the median 5 ms); its p99 only doubles.
        let mut spiky = steady.clone();
        spiky[6] = window(420, 4.0, 40.0);
        let f = stability(&spiky, 60).publish.expect("figure");
        assert_eq!((f.worst_ratio, f.worst_end_second, f.worst_percentile.as_str()), (8.0, 420, "p99.9"));
        // A climbing tail (p99 1, 2, ... 9 ms): median 5, worst 9/5.
        let climbing: Vec<WindowStats> = (1..=9).map(|m| window(60 * m, m as f64, m as f64)).collect();
        let f = stability(&climbing, 60).publish.expect("figure");
        assert_eq!((f.p99_median_ms, f.worst_ratio, f.worst_end_second), (5.0, 1.8, 540));
    }

    #[test]
    fn warm_up_short_and_lonely_windows_do_not_count() {
        let mut w: Vec<WindowStats> = (1..=3).map(|m| window(60 * m, 2.0, 2.0)).collect();
        w[0].phase = "warmup".into();
        w[0].publish_latency.p99 = 500.0;
        w.push(WindowStats { seconds: 5, ..window(185, 100.0, 100.0) });
        let f = stability(&w, 60).publish.expect("two measured windows");
        assert_eq!((f.windows, f.worst_ratio), (2, 1.0));
        assert!(stability(&w[..2], 60).publish.is_none(), "one measured window compares with nothing");
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
