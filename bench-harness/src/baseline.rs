//! The machine's limits, so results can be read as a fraction of them: the disk with `fio`
//! (io_uring engine) and the loopback network with `iperf3`, each only when installed.
//!
//! Disk: 1 MiB sequential appends to a fresh file with an fdatasync after each (about what the
//! broker's group commit does with ~1 MiB produce requests; the limit for acks with the
//! default `fsync` durability), and the same without syncs (page-cache writes, the limit for
//! a broker that does not sync). Loopback: one iperf3 TCP stream over 127.0.0.1, the limit
//! for moving bytes between a client and a broker on this machine.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::unix_ms;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    pub measured_at_unix_ms: i64,
    pub machine: String,
    /// fio, 1 MiB writes + fdatasync each, fresh file (MB/s).
    #[serde(rename = "fioWriteFdatasyncMBps")]
    pub fio_write_fdatasync_mbps: Option<f64>,
    /// fio, 1 MiB buffered writes, no sync (MB/s).
    #[serde(rename = "fioWriteMBps")]
    pub fio_write_mbps: Option<f64>,
    /// iperf3, one TCP stream over loopback (MB/s).
    #[serde(rename = "iperf3LoopbackMBps")]
    pub iperf3_loopback_mbps: Option<f64>,
    pub notes: Vec<String>,
}

impl Baseline {
    pub fn load(path: &Path) -> Result<Baseline> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Results { path: path.to_path_buf(), reason: e.to_string() })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::file(path, e))
    }
}

/// `part / whole` as a percentage, when the limit is known.
pub fn percent_of(part: f64, whole: Option<f64>) -> Option<f64> {
    whole.filter(|w| *w > 0.0).map(|w| 100.0 * part / w)
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {memory_gib:.0} GiB, Linux {}", kernel.trim())
}

/// Measures what is installed; `seconds` per measurement, files under `dir`.
pub fn measure(dir: &Path, seconds: u32) -> Result<Baseline> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let mut b = Baseline { measured_at_unix_ms: unix_ms(), machine: machine(), ..Baseline::default() };
    if installed("fio") {
        b.fio_write_fdatasync_mbps = fio(dir, seconds, true).map_err(|e| b.notes.push(e)).ok();
        b.fio_write_mbps = fio(dir, seconds, false).map_err(|e| b.notes.push(e)).ok();
    } else {
        b.notes.push("fio is not installed: no disk limit (apt-get install fio)".into());
    }
    if installed("iperf3") {
        b.iperf3_loopback_mbps = iperf3(seconds).map_err(|e| b.notes.push(e)).ok();
    } else {
        b.notes.push("iperf3 is not installed: no loopback limit (apt-get install iperf3)".into());
    }
    Ok(b)
}

fn fio(dir: &Path, seconds: u32, sync: bool) -> Result<f64, String> {
    let file = dir.join("riptide-bench-fio.dat");
    let _ = std::fs::remove_file(&file);
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=baseline",
        "--ioengine=io_uring",
        "--rw=write",
        "--bs=1m",
        "--size=4g",
        "--fallocate=none",
    ])
    .arg(format!("--filename={}", file.display()))
    .arg(format!("--runtime={seconds}"))
    .arg("--output-format=json");
    if sync {
        cmd.arg("--fdatasync=1");
    }
    let output = cmd.output().map_err(|e| format!("fio: {e}"));
    let _ = std::fs::remove_file(&file);
    let output = output?;
    if !output.status.success() {
        return Err(format!("fio failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("fio output: {e}"))?;
    json["jobs"][0]["write"]["bw_bytes"]
        .as_f64()
        .map(|b| b / 1e6)
        .ok_or_else(|| "fio output: no write bandwidth".into())
}

fn iperf3(seconds: u32) -> Result<f64, String> {
    // iperf3's own port on a loopback address reserved for this run: nothing else listens
    // there, and no outgoing connection can hold it (see riptide_client::launch).
    let host = riptide_client::launch::LoopbackHost::reserve().map_err(|e| format!("iperf3: {e}"))?;
    let (ip, port) = (host.ip.to_string(), 5201);
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", &ip, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("iperf3 -s: {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    let output = Command::new("iperf3")
        .args(["-c", &ip, "-p", &port.to_string(), "-t", &seconds.to_string(), "-J"])
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let output = output.map_err(|e| format!("iperf3 -c: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("iperf3 output: {e}"))?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 8e6)
        .ok_or_else(|| format!("iperf3 output: no throughput ({})", json["error"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_the_limit() {
        assert_eq!(percent_of(50.0, Some(200.0)), Some(25.0));
        assert_eq!(percent_of(50.0, None), None);
        assert_eq!(percent_of(50.0, Some(0.0)), None);
    }
}
