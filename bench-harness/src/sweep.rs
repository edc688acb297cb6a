//! The latency sweep: a probe at max rate finds the throughput the target sustains, then the
//! workload runs at fixed fractions of it (open loop), so latency can be read against load —
//! the curve that shows where queueing starts, which a single max-rate run cannot.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::{RunResult, FORMAT_VERSION};
use crate::runner::{self, slug, RunOptions, Target};
use crate::workload::{Rate, Workload};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepResult {
    pub format_version: u32,
    pub kind: String,
    pub workload: String,
    /// msgs/s published by the probe at max rate (the 100 % of the fractions).
    pub probe_rate: f64,
    pub fractions: Vec<f64>,
    pub probe: RunResult,
    pub steps: Vec<RunResult>,
}

impl SweepResult {
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::file(path, e))
    }

    /// `None` when the file is not a sweep (a single run, say).
    pub fn load(path: &Path) -> Result<Option<SweepResult>> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Results { path: path.to_path_buf(), reason: e.to_string() })?;
        if value["kind"] != "sweep" {
            return Ok(None);
        }
        let sweep: SweepResult = serde_json::from_value(value)
            .map_err(|e| Error::Results { path: path.to_path_buf(), reason: e.to_string() })?;
        if sweep.format_version != FORMAT_VERSION {
            return Err(Error::Results {
                path: path.to_path_buf(),
                reason: format!("format version {}", sweep.format_version),
            });
        }
        Ok(Some(sweep))
    }
}

/// The rate of each step: `fraction` of what the probe published.
pub fn step_rates(probe_rate: f64, fractions: &[f64]) -> Vec<f64> {
    fractions.iter().map(|f| (probe_rate * f).max(1.0)).collect()
}

/// Runs the probe and every step; writes each step's files and the sweep's own.
pub fn run(
    w: &Workload,
    file: &str,
    target: &Target,
    options: &RunOptions,
    out: &Path,
) -> Result<SweepResult> {
    let sweep = w.sweep.clone().ok_or_else(|| Error::Invalid("not a sweep workload".into()))?;
    let base = slug(&w.name);
    let probe_workload = Workload { rate: Rate::Max, duration: sweep.probe, ..w.clone() };
    eprintln!("{}: probe at max rate for {:.0} s", w.name, sweep.probe.as_secs_f64());
    let probe = runner::run(&probe_workload, file, target, options)?;
    runner::write_outputs(&probe, out, &format!("{base}-probe"))?;
    eprint!("{}", runner::summary(&probe));
    let rates = step_rates(probe.aggregated_publish_rate, &sweep.fractions);
    let mut steps = Vec::new();
    for (fraction, rate) in sweep.fractions.iter().zip(rates) {
        let step = Workload { rate: Rate::PerSecond(rate), sweep: None, ..w.clone() };
        eprintln!("{}: {:.0} % of max = {rate:.0} msgs/s", w.name, fraction * 100.0);
        let mut result = runner::run(&step, file, target, options)?;
        result.config.workload = format!("{} @ {:.0}%", w.name, fraction * 100.0);
        runner::write_outputs(&result, out, &format!("{base}-{:03.0}pct", fraction * 100.0))?;
        eprint!("{}", runner::summary(&result));
        steps.push(result);
    }
    let result = SweepResult {
        format_version: FORMAT_VERSION,
        kind: "sweep".into(),
        workload: w.name.clone(),
        probe_rate: probe.aggregated_publish_rate,
        fractions: sweep.fractions.clone(),
        probe,
        steps,
    };
    result.save(&out.join(format!("{base}.json")))?;
    let svg = out.join(format!("{base}-sweep.svg"));
    std::fs::write(&svg, crate::plots::sweep(&w.name, &result.steps)).map_err(|e| Error::file(&svg, e))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_fractions_of_the_probe() {
        assert_eq!(step_rates(10_000.0, &[0.1, 0.5, 0.9]), vec![1_000.0, 5_000.0, 9_000.0]);
        assert_eq!(step_rates(0.0, &[0.5]), vec![1.0], "never a zero (unbounded) rate");
    }
}
