//! Runs side by side: a Markdown table (readable in a terminal, pasteable into the docs) and
//! a plot of their latency curves and throughput. A sweep file contributes its probe and each
//! of its steps as rows. The headline table of docs/BENCHMARKS.md is this table.

use std::path::{Path, PathBuf};

use crate::baseline::{percent_of, Baseline};
use crate::error::Result;
use crate::report::RunResult;
use crate::svg::number;
use crate::sweep::SweepResult;

/// A labelled run.
pub struct Row {
    pub label: String,
    pub result: RunResult,
}

/// Reads result files; a sweep becomes its probe and its steps.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for path in paths {
        if let Some(sweep) = SweepResult::load(path)? {
            rows.push(Row { label: format!("{} (max-rate probe)", sweep.workload), result: sweep.probe });
            for step in sweep.steps {
                rows.push(Row { label: step.config.workload.clone(), result: step });
            }
        } else {
            let result = RunResult::load(path)?;
            rows.push(Row { label: label(path, &result), result });
        }
    }
    Ok(rows)
}

fn label(path: &Path, r: &RunResult) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    if stem.is_empty() {
        r.config.workload.clone()
    } else {
        stem
    }
}

fn ms(v: f64) -> String {
    if v == 0.0 {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn rate(target: f64) -> String {
    if target == 0.0 {
        "max".into()
    } else {
        number(target.round())
    }
}

/// The Markdown table; `baseline` adds the fraction-of-limit column (the runs' own baselines
/// are used when none is given).
pub fn table(rows: &[Row], baseline: Option<&Baseline>) -> String {
    let mut out = String::from(
        "| run | target | target rate | msgs/s | MB/s | of limit | publish p50 / p90 / p99 / p99.9 / p99.99 / max (ms) | end-to-end p50 / p99 / p99.9 / max (ms) | errors | CPU harness / broker (cores) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let r = &row.result;
        let p = &r.aggregated_publish_latency;
        let e = &r.aggregated_end_to_end_latency;
        let limit = baseline.or(r.baseline.as_ref());
        let of_disk = limit.and_then(|b| percent_of(r.aggregated_publish_mbps, b.fio_write_fdatasync_mbps));
        let of_net = limit.and_then(|b| {
            percent_of(r.aggregated_publish_mbps.max(r.aggregated_consume_mbps), b.iperf3_loopback_mbps)
        });
        let of_limit = match (of_disk, of_net) {
            (Some(d), Some(n)) => format!("{d:.0} % disk, {n:.1} % net"),
            (Some(d), None) => format!("{d:.0} % disk"),
            (None, Some(n)) => format!("{n:.1} % net"),
            (None, None) => "–".into(),
        };
        let e2e = if e.count == 0 {
            "–".into()
        } else {
            format!("{} / {} / {} / {}", ms(e.p50), ms(e.p99), ms(e.p999), ms(e.max))
        };
        out += &format!(
            "| {} | {} | {} | {} | {:.1} | {} | {} / {} / {} / {} / {} / {} | {} | {} | {} |\n",
            row.label,
            short_target(&r.config.target),
            rate(r.config.target_rate),
            number(r.aggregated_publish_rate.round()),
            r.aggregated_publish_mbps,
            of_limit,
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.p9999),
            ms(p.max),
            e2e,
            r.errors,
            cpu(r)
        );
    }
    out
}

/// CPU time as cores busy over the run's wall time (warm-up included).
fn cpu(r: &RunResult) -> String {
    let wall = r.cpu.wall_seconds.max(1e-9);
    let broker = r.cpu.broker_cpu_seconds.map_or("–".into(), |b| format!("{:.2}", b / wall));
    format!("{:.2} / {broker}", r.cpu.harness_cpu_seconds / wall)
}

fn short_target(target: &str) -> String {
    if target.starts_with("riptide (spawned") {
        "riptide".into()
    } else if target.starts_with("discard broker") {
        "discard".into()
    } else {
        target.to_string()
    }
}

/// The comparison plot.
pub fn plot(rows: &[Row]) -> String {
    let runs: Vec<(&str, &RunResult)> = rows.iter().map(|r| (r.label.as_str(), &r.result)).collect();
    crate::plots::compare(&runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::measured;

    #[test]
    fn the_table_has_a_row_per_run_with_limits_and_cpu() {
        let mut a = measured();
        a.config.target = "riptide (spawned: target/release/riptide)".into();
        let b = Baseline {
            fio_write_fdatasync_mbps: Some(1.0),
            iperf3_loopback_mbps: Some(100.0),
            ..Baseline::default()
        };
        let rows =
            vec![Row { label: "one".into(), result: a.clone() }, Row { label: "two".into(), result: a }];
        let table = table(&rows, Some(&b));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "header, rule, two rows:\n{table}");
        let row = lines[2];
        // 0.1 MB/s published of a 1 MB/s disk; consume 0.2 MB/s of 100 MB/s loopback.
        assert!(row.starts_with("| one | riptide | 1000 | 1000 | 0.1 | 10 % disk, 0.2 % net |"), "{row}");
        assert!(row.contains("| 0.50 / 0.70 / 0.70 / 0.70 / 0.70 / 0.70 |"), "{row}");
        assert!(row.contains("| 0.90 / 0.90 / 0.90 / 0.90 | 3 | 0.17 / 0.33 |"), "{row}");
        assert_eq!(lines[0].matches('|').count(), row.matches('|').count(), "as many cells as headers");
        let svg = plot(&rows);
        assert_eq!(svg.matches("<polyline").count(), 6, "publish + e2e curves and a throughput line per run");
    }
}
