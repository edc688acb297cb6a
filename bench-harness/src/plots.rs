//! The report's charts: the latency percentile curve, throughput and p99 over time, the
//! side-by-side comparison of several runs, and the latency-vs-throughput curve of a sweep.

use std::collections::{BTreeMap, BTreeSet};

use crate::report::RunResult;
use crate::segments::{EventKind, SegmentEvent};
use crate::svg::{document, Axis, Chart, Mark, Series};

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 380.0;

fn curve_series(name: &str, quantiles: &[[f64; 2]], color: usize, dashed: bool) -> Option<Series> {
    (!quantiles.is_empty()).then(|| Series {
        name: name.to_string(),
        points: quantiles.iter().map(|q| (q[0], q[1])).collect(),
        color,
        dashed,
    })
}

fn latency_chart(title: &str, runs: &[(&str, &RunResult)]) -> Chart {
    let mut series = Vec::new();
    for (i, (label, r)) in runs.iter().enumerate() {
        let prefix = if runs.len() > 1 { format!("{label}: ") } else { String::new() };
        series.extend(curve_series(&format!("{prefix}publish"), &r.publish_latency_quantiles, i, false));
        series.extend(curve_series(&format!("{prefix}end-to-end"), &r.end_to_end_latency_quantiles, i, true));
    }
    Chart {
        title: title.to_string(),
        x_label: "percentile".into(),
        y_label: "latency (ms)".into(),
        x_axis: Axis::Nines,
        y_axis: Axis::Log10,
        series,
        shaded: Vec::new(),
        markers: false,
        legend_outside: false,
        marks: Vec::new(),
    }
}

/// Publish and end-to-end latency by percentile, over the measured window.
pub fn latency_curve(r: &RunResult) -> String {
    let title = format!("{}: latency by percentile (measured window)", r.config.workload);
    document(WIDTH, PANEL_HEIGHT, &latency_chart(&title, &[("", r)]).render(0.0, 0.0, WIDTH, PANEL_HEIGHT))
}

fn seconds(n: usize) -> impl Iterator<Item = f64> {
    (1..=n).map(|s| s as f64)
}

fn warmup_shading(r: &RunResult) -> Vec<(f64, f64, String)> {
    let warm = r.phase.iter().filter(|p| *p == "warmup").count();
    if warm == 0 {
        Vec::new()
    } else {
        vec![(0.0, warm as f64, "warm-up".to_string())]
    }
}

/// At most about this many marks per kind of segment event: past it, a kind's events are
/// merged into bins of 10 s, 30 s, 1 min, ... (an hour with a roll every second stays legible,
/// and the SVG small).
const MAX_MARKS_PER_KIND: usize = 120;

/// Marks for the broker's segment events (D: deletions, C: compactions, N: rolls), binned per
/// kind when there are many (`MAX_MARKS_PER_KIND`).
fn segment_marks(events: &[SegmentEvent]) -> Vec<Mark> {
    let mut marks = Vec::new();
    for kind in [EventKind::Deletion, EventKind::Compaction, EventKind::Roll] {
        let (label, what, color) = match kind {
            EventKind::Deletion => ("D", "deleted", 4),
            EventKind::Compaction => ("C", "compacted", 5),
            EventKind::Roll => ("N", "rolled (new)", 6),
        };
        let of_kind: Vec<&SegmentEvent> = events.iter().filter(|e| e.kind == kind).collect();
        let bins = |width: u64| of_kind.iter().map(|e| e.second / width).collect::<BTreeSet<_>>().len();
        let width =
            [1, 10, 30, 60, 300, 600].into_iter().find(|w| bins(*w) <= MAX_MARKS_PER_KIND).unwrap_or(3600);
        // Bin start → (seconds with events, segments, partitions).
        let mut binned: BTreeMap<u64, (u32, u32, u32)> = BTreeMap::new();
        for e in of_kind {
            let b = binned.entry(e.second / width * width).or_default();
            *b = (b.0 + 1, b.1 + e.segments, b.2 + e.partitions);
        }
        for (start, (seconds, segments, partitions)) in binned {
            let tooltip = if width == 1 {
                format!("{start} s: {segments} segment(s) {what} in {partitions} partition(s)")
            } else {
                format!("{start}-{} s: {segments} segment(s) {what}, in {seconds} second(s)", start + width)
            };
            marks.push(Mark { x: start as f64, label: label.into(), tooltip, color });
        }
    }
    marks
}

/// Vertical marks for what happened to the broker's segments (`segment_marks`) and the backlog
/// test (R: consumers released, E: backlog drained).
fn event_marks(r: &RunResult) -> Vec<Mark> {
    let mut marks = segment_marks(&r.segment_events);
    if let Some(b) = &r.backlog_drain {
        let mut mark = |second: Option<f64>, label: &str, tooltip: &str| {
            if let Some(s) = second {
                marks.push(Mark {
                    x: s,
                    label: label.into(),
                    tooltip: format!("{s:.2} s: {tooltip}"),
                    color: 3,
                });
            }
        };
        mark(b.released_at_second, "R", "backlog built, consumers released");
        mark(b.drained_at_second, "E", "backlog drained");
    }
    marks
}

/// Each window's p99 and p99.9 at the window's end (soak runs), measured windows only.
fn window_series(r: &RunResult) -> Vec<Series> {
    let measured: Vec<_> = r.windows.iter().filter(|w| w.phase == "measure").collect();
    if measured.len() < 2 {
        return Vec::new();
    }
    let pick = |f: fn(&crate::windows::WindowStats) -> f64| -> Vec<(f64, f64)> {
        measured.iter().map(|w| (w.end_second as f64, f(w))).collect()
    };
    vec![
        Series {
            name: "window p99".into(),
            points: pick(|w| w.publish_latency.p99),
            color: 3,
            dashed: false,
        },
        Series {
            name: "window p99.9".into(),
            points: pick(|w| w.publish_latency.p999),
            color: 4,
            dashed: false,
        },
    ]
}

/// Two panels: msgs/s published and consumed each second, and p99 latency each second (with
/// each soak window's p99 and p99.9), both marked with the broker's segment events.
pub fn timeseries(r: &RunResult) -> String {
    let n = r.phase.len();
    let series = |name: &str, values: &[f64], color: usize, dashed: bool| Series {
        name: name.to_string(),
        points: seconds(n).zip(values.iter().copied()).collect(),
        color,
        dashed,
    };
    let throughput = Chart {
        title: format!("{}: throughput per second", r.config.workload),
        x_label: "time (s)".into(),
        y_label: "msgs/s".into(),
        x_axis: Axis::Linear,
        y_axis: Axis::Linear,
        series: if r.consume_rate.iter().any(|v| *v > 0.0) {
            vec![series("published", &r.publish_rate, 0, false), series("consumed", &r.consume_rate, 1, true)]
        } else {
            vec![series("published", &r.publish_rate, 0, false)]
        },
        shaded: warmup_shading(r),
        markers: false,
        legend_outside: false,
        marks: event_marks(r),
    };
    let mut latency_series = vec![series("publish p99", &r.publish_latency.p99, 0, false)];
    if r.end_to_end_latency.p99.iter().any(|v| *v > 0.0) {
        latency_series.push(series("end-to-end p99", &r.end_to_end_latency.p99, 1, true));
    }
    latency_series.push(series("publish p50", &r.publish_latency.p50, 2, false));
    latency_series.extend(window_series(r));
    let latency = Chart {
        title: format!("{}: p99 latency per second", r.config.workload),
        x_label: "time (s)".into(),
        y_label: "latency (ms)".into(),
        x_axis: Axis::Linear,
        y_axis: Axis::Log10,
        series: latency_series,
        shaded: warmup_shading(r),
        markers: false,
        legend_outside: false,
        marks: event_marks(r),
    };
    let body = throughput.render(0.0, 0.0, WIDTH, PANEL_HEIGHT)
        + &latency.render(0.0, PANEL_HEIGHT, WIDTH, PANEL_HEIGHT);
    document(WIDTH, 2.0 * PANEL_HEIGHT, &body)
}

/// Runs side by side: their percentile curves overlaid, and their published msgs/s over time.
pub fn compare(runs: &[(&str, &RunResult)]) -> String {
    let curves = latency_chart("latency by percentile", runs);
    let throughput = Chart {
        title: "published msgs/s per second".into(),
        x_label: "time (s)".into(),
        y_label: "msgs/s".into(),
        x_axis: Axis::Linear,
        y_axis: Axis::Linear,
        series: runs
            .iter()
            .enumerate()
            .map(|(i, (label, r))| Series {
                name: label.to_string(),
                points: seconds(r.publish_rate.len()).zip(r.publish_rate.iter().copied()).collect(),
                color: i,
                dashed: false,
            })
            .collect(),
        shaded: Vec::new(),
        markers: false,
        legend_outside: false,
        marks: Vec::new(),
    };
    let mut curves = curves;
    let mut throughput = throughput;
    curves.legend_outside = true;
    throughput.legend_outside = true;
    let width = WIDTH + curves.legend_width().max(throughput.legend_width());
    let top = PANEL_HEIGHT.max(curves.legend_height());
    let bottom = PANEL_HEIGHT.max(throughput.legend_height());
    let body = curves.render(0.0, 0.0, width, top) + &throughput.render(0.0, top, width, bottom);
    document(width, top + bottom, &body)
}

/// Latency against achieved throughput over the steps of a sweep.
pub fn sweep(name: &str, steps: &[RunResult]) -> String {
    let pick = |f: fn(&RunResult) -> f64| -> Vec<(f64, f64)> {
        steps.iter().map(|s| (s.aggregated_publish_rate, f(s))).collect()
    };
    let mut series = vec![
        Series {
            name: "publish p50".into(),
            points: pick(|s| s.aggregated_publish_latency.p50),
            color: 0,
            dashed: false,
        },
        Series {
            name: "publish p99".into(),
            points: pick(|s| s.aggregated_publish_latency.p99),
            color: 1,
            dashed: false,
        },
        Series {
            name: "publish p99.9".into(),
            points: pick(|s| s.aggregated_publish_latency.p999),
            color: 2,
            dashed: false,
        },
    ];
    if steps.iter().any(|s| s.aggregated_end_to_end_latency.count > 0) {
        series.push(Series {
            name: "end-to-end p50".into(),
            points: pick(|s| s.aggregated_end_to_end_latency.p50),
            color: 0,
            dashed: true,
        });
        series.push(Series {
            name: "end-to-end p99".into(),
            points: pick(|s| s.aggregated_end_to_end_latency.p99),
            color: 1,
            dashed: true,
        });
    }
    let chart = Chart {
        title: format!("{name}: latency against throughput"),
        x_label: "published msgs/s".into(),
        y_label: "latency (ms)".into(),
        x_axis: Axis::Linear,
        y_axis: Axis::Log10,
        series,
        shaded: Vec::new(),
        markers: true,
        legend_outside: false,
        marks: Vec::new(),
    };
    document(WIDTH, PANEL_HEIGHT, &chart.render(0.0, 0.0, WIDTH, PANEL_HEIGHT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::BacklogDrain;
    use crate::report::tests::measured;

    #[test]
    fn the_time_series_marks_segment_events_and_the_backlog_phases() {
        let mut r = measured();
        r.segment_events = vec![
            SegmentEvent { second: 2, kind: EventKind::Deletion, partitions: 3, segments: 4 },
            SegmentEvent { second: 3, kind: EventKind::Compaction, partitions: 1, segments: 2 },
        ];
        r.backlog_drain = Some(BacklogDrain { released_at_second: Some(2.0), ..BacklogDrain::default() });
        let svg = timeseries(&r);
        // Each mark on both panels.
        assert_eq!(svg.matches("<title>").count(), 6, "{svg}");
        assert!(svg.contains("4 segment(s) deleted in 3 partition(s)") && svg.contains("consumers released"));
        assert!(!timeseries(&measured()).contains("<title>"));
    }

    #[test]
    fn many_segment_events_are_binned() {
        // An hour with a roll every second and a deletion every 5 s.
        let mut events: Vec<SegmentEvent> = (0..3600)
            .map(|s| SegmentEvent { second: s, kind: EventKind::Roll, partitions: 2, segments: 2 })
            .collect();
        events.extend((0..720).map(|i| SegmentEvent {
            second: i * 5,
            kind: EventKind::Deletion,
            partitions: 1,
            segments: 3,
        }));
        let marks = segment_marks(&events);
        let count = |label: &str| marks.iter().filter(|m| m.label == label).count();
        assert_eq!(count("N"), 120, "30-second bins");
        assert_eq!(count("D"), 120, "30-second bins");
        let first = marks.iter().find(|m| m.label == "N").expect("a roll mark");
        assert_eq!(first.tooltip, "0-30 s: 60 segment(s) rolled (new), in 30 second(s)");
        // A few events keep a mark each.
        assert_eq!(segment_marks(&events[..5]).len(), 5);
    }
}
